/** Tidings' version, reported in /status/ beside Aphlict's protocol `version`. */
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const VERSION: string = (require('../package.json') as { version: string }).version;
