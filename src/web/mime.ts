/**
 * Content types by file extension for the files Rotor serves, the same types the bundled
 * nginx.conf declares. Text types carry `charset=utf-8`, as nginx adds it there with
 * `charset utf-8`.
 */
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'application/javascript; charset=utf-8',
  '.mjs': 'application/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.xml': 'text/xml; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
  '.pdf': 'application/pdf',
  '.proto': 'text/plain; charset=utf-8',
};

/** The type of files with an unknown extension, as nginx's `default_type` in nginx.conf. */
export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

/** Returns the Content-Type for a file extension such as `.html` (case-insensitive). */
export function contentTypeOf(extension: string): string {
  return CONTENT_TYPES[extension.toLowerCase()] ?? DEFAULT_CONTENT_TYPE;
}
