import type { IncomingMessage, ServerResponse } from 'node:http';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RotorNode } from '../node.js';
import { StaticFiles } from './static.js';
import { renderStatusPage, STATUS_CACHE_CONTROL } from './status.js';

/**
 * The `public` folder of the installation. This module sits two levels below the
 * package root both as src/web/pages.ts and as dist/web/pages.js.
 */
export const DEFAULT_PUBLIC_DIR = fileURLToPath(new URL('../../public', import.meta.url));

/** The static file server of each node, created on its first request. */
const staticFilesByNode = new WeakMap<RotorNode, StaticFiles>();

/**
 * Returns the folder a node serves: `public_dir` resolved against the working directory,
 * or the installation's `public` folder when the option is empty. A request for
 * `/static/<file>` maps to `<folder>/static/<file>`, as nginx's `root` does.
 */
export function publicDirOf(node: RotorNode): string {
  return node.config.public_dir === '' ? DEFAULT_PUBLIC_DIR : resolve(node.config.public_dir);
}

/**
 * Serves the plain HTTP pages of a node: static files under /static/ and the status
 * page. Returns false when the path is not one of them.
 */
export function handlePage(req: IncomingMessage, res: ServerResponse, path: string, node: RotorNode): boolean {
  if (path.startsWith('/static/')) {
    let files = staticFilesByNode.get(node);
    if (files === undefined) {
      files = new StaticFiles(publicDirOf(node), node.logger.child({ component: 'static' }));
      staticFilesByNode.set(node, files);
    }
    files.serve(req, res, path.slice(1));
    return true;
  }
  if (path === '/status') {
    serveStatus(req, res, node);
    return true;
  }
  return false;
}

function serveStatus(req: IncomingMessage, res: ServerResponse, node: RotorNode): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': 19 }).end('method not allowed\n');
    return;
  }
  // The page is pure ASCII, so its length in characters is its length in bytes, and
  // latin1 is the cheapest exact encoding for the socket write.
  const html = renderStatusPage(node);
  res.writeHead(200, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': html.length,
    'Cache-Control': STATUS_CACHE_CONTROL,
  });
  if (req.method === 'HEAD') res.end();
  else res.end(html, 'latin1');
}
