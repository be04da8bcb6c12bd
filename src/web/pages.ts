import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RotorNode } from '../node.js';

/**
 * Serves the plain HTTP pages of a node: static files under /static/ and the status
 * page. Returns false when the path is not one of them.
 */
export function handlePage(_req: IncomingMessage, _res: ServerResponse, _path: string, _node: RotorNode): boolean {
  return false;
}
