#!/usr/bin/env node
/**
 * The `rotor` command: `rotor [serve] [--config FILE] [--<option> VALUE ...]`, plus
 * `genconfig`, `checkconfig`, `gentoken` and `version`.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { SignJWT } from 'jose';
import { formatDuration, parseDuration } from './config/duration.js';
import { ConfigError, loadConfig, optionSpec, type LoadedConfig } from './config/load.js';
import { createLogger } from './log.js';
import { RotorServer, StartError } from './server.js';
import { VERSION } from './version.js';

const USAGE = `Usage: rotor [command] [flags]

Commands:
  serve         start the server (the default)
  genconfig     write a new config file with random secrets (-c FILE, default config.json)
  checkconfig   validate a config file (-c FILE, default config.json) and print its warnings
  gentoken      print a connection JWT signed with token_hmac_secret_key:
                [--user ID, default "" (anonymous)] [--ttl DURATION, default 168h]
  version       print the version (also --version)

Flags:
  -c, --config FILE     JSON config file with Centrifugo option names
  --port N              HTTP port (default 8000)
  --address ADDR        interface to bind (default 127.0.0.1)
  --log_level LEVEL     none, trace, debug, info, warn or error
  --data_dir DIR        folder of the SQLite history (default ./data)
  --<option> VALUE      any other option of the config file
Environment: ROTOR_<OPTION> sets an option, for example ROTOR_API_KEY=secret.
`;

interface ParsedArgs {
  command: string;
  configFile: string | undefined;
  flags: Record<string, string | boolean>;
  /** Flags of the gentoken command, which are not config options. */
  extra: Record<string, string>;
}

const COMMANDS = new Set(['serve', 'genconfig', 'checkconfig', 'gentoken', 'version', 'help']);
const EXTRA_FLAGS = new Set(['user', 'ttl']);

function parseArgs(argv: string[]): ParsedArgs {
  const parsed: ParsedArgs = { command: 'serve', configFile: undefined, flags: {}, extra: {} };
  let i = 0;
  if (argv[0] !== undefined && !argv[0].startsWith('-')) {
    if (!COMMANDS.has(argv[0])) throw new ConfigError(`unknown command "${argv[0]}"; run "rotor help" for the list`);
    parsed.command = argv[0];
    i = 1;
  }
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h' || arg === '--help') {
      parsed.command = 'help';
      continue;
    }
    if (arg === '-v' || arg === '--version') {
      parsed.command = 'version';
      continue;
    }
    if (!arg.startsWith('-')) {
      const hint = COMMANDS.has(arg) ? `put the command first: rotor ${arg} [flags]` : 'flags look like --port 9000';
      throw new ConfigError(`unexpected argument "${arg}"; ${hint}`);
    }
    const body = arg.replace(/^--?/, '');
    const equals = body.indexOf('=');
    const name = equals >= 0 ? body.slice(0, equals) : body;
    let value: string | undefined = equals >= 0 ? body.slice(equals + 1) : undefined;
    const isConfig = name === 'c' || name === 'config';
    const isBool = !isConfig && optionSpec(name)?.kind === 'bool';
    if (value === undefined) {
      const next = argv[i + 1];
      const takesNext = isBool ? next === 'true' || next === 'false' : next !== undefined && !next.startsWith('--');
      if (takesNext) {
        value = next;
        i++;
      }
    }
    if (isConfig) {
      if (value === undefined) throw new ConfigError('flag --config needs a file path');
      parsed.configFile = value;
    } else if (EXTRA_FLAGS.has(name) || name === 'u') {
      if (value === undefined) throw new ConfigError(`flag --${name} needs a value`);
      parsed.extra[name === 'u' ? 'user' : name] = value;
    } else {
      parsed.flags[name] = value ?? true;
    }
  }
  return parsed;
}

function load(args: ParsedArgs): LoadedConfig {
  return loadConfig({ file: args.configFile, env: process.env, flags: args.flags });
}

async function serve(args: ParsedArgs): Promise<void> {
  const { config, warnings } = load(args);
  const logger = createLogger(config.log_level);
  for (const warning of warnings) logger.warn({ detail: warning }, 'config warning');

  // Signal handlers come first: a signal during start-up must still shut down gracefully.
  let server: RotorServer | undefined;
  let stopRequested = false;
  let firstSignalAt = 0;
  const shutDown = (running: RotorServer): void => {
    running.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  const stop = (signal: string): void => {
    if (firstSignalAt !== 0) {
      // GNU timeout and some supervisors send the same signal twice at once (to the
      // process and to its group); only a later signal means "stop waiting".
      if (Date.now() - firstSignalAt < 1000) return;
      logger.warn({ signal }, 'second signal, exiting without waiting for shutdown');
      process.exit(1);
    }
    firstSignalAt = Date.now();
    logger.info({ signal }, 'signal received');
    if (server === undefined) stopRequested = true;
    else shutDown(server);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  try {
    server = await RotorServer.start(config, logger);
  } catch (err) {
    if (err instanceof StartError) {
      logger.fatal(err.message);
      process.exit(1);
    }
    throw err;
  }
  if (stopRequested) shutDown(server);
}

function genconfig(args: ParsedArgs): void {
  const file = args.configFile ?? 'config.json';
  if (existsSync(file)) throw new ConfigError(`${file} already exists; remove it or pass -c with another path`);
  const config = {
    token_hmac_secret_key: randomBytes(32).toString('hex'),
    api_key: randomBytes(24).toString('hex'),
    allowed_origins: [],
    history_size: 100,
    history_ttl: '300s',
    allow_subscribe_for_client: true,
    namespaces: [],
  };
  writeFileSync(file, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  process.stdout.write(`${file} written\n`);
}

function checkconfig(args: ParsedArgs): void {
  // Like genconfig, checkconfig defaults to ./config.json, so that it never "validates" only the defaults.
  const { warnings } = load({ ...args, configFile: args.configFile ?? 'config.json' });
  for (const warning of warnings) process.stderr.write(`warning: ${warning}\n`);
  process.stdout.write('config is valid\n');
}

async function gentoken(args: ParsedArgs): Promise<void> {
  const { config } = load(args);
  if (config.token_hmac_secret_key === '') {
    throw new ConfigError('gentoken needs token_hmac_secret_key: add it to the config file, or create a config with "rotor genconfig"');
  }
  const user = args.extra.user ?? '';
  const ttl = parseDuration(args.extra.ttl ?? '168h');
  if (ttl === undefined || ttl <= 0) throw new ConfigError(`invalid value for flag --ttl: expected a duration such as "3600s", got ${JSON.stringify(args.extra.ttl)}`);
  const token = await new SignJWT({ sub: user })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(Math.floor((Date.now() + ttl) / 1000))
    .sign(new TextEncoder().encode(config.token_hmac_secret_key));
  process.stdout.write(`${token}\n`);
  process.stderr.write(`token for user "${user}", valid for ${formatDuration(ttl)}\n`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  switch (args.command) {
    case 'serve':
      return serve(args);
    case 'genconfig':
      return genconfig(args);
    case 'checkconfig':
      return checkconfig(args);
    case 'gentoken':
      return gentoken(args);
    case 'version':
      process.stdout.write(`rotor ${VERSION}\n`);
      return;
    default:
      process.stdout.write(USAGE);
  }
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`rotor: ${err.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`rotor: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
