import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { parseDuration } from '../src/config/duration.js';
import { ConfigError, loadConfig, type ConfigSources } from '../src/config/load.js';
import { tempDir } from './helpers/server.js';

const dir = tempDir('rotor-config-');
after(() => dir.remove());

let fileCounter = 0;

/** Writes a JSON config file into the test folder and returns its path. */
function configFile(options: Record<string, unknown>): string {
  const path = join(dir.path, `config-${fileCounter++}.json`);
  writeFileSync(path, JSON.stringify(options));
  return path;
}

/** Runs loadConfig and returns the ConfigError it throws. Fails the test when loadConfig succeeds. */
function configError(sources: ConfigSources): ConfigError {
  try {
    loadConfig(sources);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('loadConfig accepted the configuration');
}

describe('durations', () => {
  test('parseDuration accepts Go forms', () => {
    assert.equal(parseDuration('300s'), 300_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('1.5h'), 5_400_000);
    assert.equal(parseDuration('2m30s'), 150_000);
    assert.equal(parseDuration('0'), 0);
  });

  test('parseDuration rejects other text', () => {
    for (const text of ['', '300', '5 s', '-1s', '1d', 's', '1h30', 'abc']) {
      assert.equal(parseDuration(text), undefined, JSON.stringify(text));
    }
  });

  test('duration options resolve to milliseconds', () => {
    const file = configFile({ history_ttl: '300s', history_meta_ttl: '1h30m', presence_ttl: '500ms', shutdown_timeout: '0' });
    const { config } = loadConfig({ file });
    assert.equal(config.history_ttl, 300_000);
    assert.equal(config.history_meta_ttl, 5_400_000);
    assert.equal(config.presence_ttl, 500);
    assert.equal(config.shutdown_timeout, 0);
  });

  test('number 0 is a zero duration', () => {
    const { config } = loadConfig({ file: configFile({ history_ttl: 0 }) });
    assert.equal(config.history_ttl, 0);
  });

  test('bare number duration rejected', () => {
    const err = configError({ file: configFile({ history_ttl: 300 }) });
    assert.match(err.message, /"history_ttl"/);
  });

  test('bare numeric string duration rejected', () => {
    const err = configError({ env: { ROTOR_HISTORY_TTL: '300' } });
    assert.match(err.message, /"history_ttl"/);
  });

  test('zero rejected for positive durations', () => {
    const err = configError({ file: configFile({ presence_ttl: '0s' }) });
    assert.match(err.message, /"presence_ttl"/);
  });
});

describe('environment variables', () => {
  test('env sets typed options', () => {
    const { config, warnings } = loadConfig({
      env: {
        ROTOR_PRESENCE: 'true',
        ROTOR_API_INSECURE: 'yes',
        ROTOR_JOIN_LEAVE: '0',
        ROTOR_HISTORY_SIZE: '25',
        ROTOR_HISTORY_TTL: '1h30m',
        ROTOR_ALLOWED_ORIGINS: 'https://a.example, https://b.example',
        ROTOR_API_KEY: 'secret',
      },
    });
    assert.equal(config.presence, true);
    assert.equal(config.api_insecure, true);
    assert.equal(config.join_leave, false);
    assert.equal(config.history_size, 25);
    assert.equal(config.history_ttl, 5_400_000);
    assert.deepEqual(config.allowed_origins, ['https://a.example', 'https://b.example']);
    assert.equal(config.api_key, 'secret');
    assert.deepEqual(warnings, []);
  });

  test('env list as JSON array', () => {
    const { config } = loadConfig({ env: { ROTOR_ALLOWED_ORIGINS: '["https://a.example","*"]' } });
    assert.deepEqual(config.allowed_origins, ['https://a.example', '*']);
  });

  test('env namespaces as JSON', () => {
    const { config } = loadConfig({
      env: { ROTOR_NAMESPACES: '[{"name":"chat","presence":true,"history_size":5,"history_ttl":"60s"}]' },
    });
    assert.equal(config.namespaces.length, 1);
    const [chat] = config.namespaces;
    assert.equal(chat!.name, 'chat');
    assert.equal(chat!.presence, true);
    assert.equal(chat!.history_size, 5);
    assert.equal(chat!.history_ttl, 60_000);
    assert.equal(chat!.join_leave, false);
  });

  test('env namespaces with invalid JSON', () => {
    const err = configError({ env: { ROTOR_NAMESPACES: '[{"name":' } });
    assert.match(err.message, /"namespaces"/);
  });

  test('env bool with wrong value', () => {
    const err = configError({ env: { ROTOR_PRESENCE: 'maybe' } });
    assert.match(err.message, /"presence"/);
    assert.match(err.message, /ROTOR_PRESENCE/);
  });

  test('env int with wrong value', () => {
    const err = configError({ env: { ROTOR_HISTORY_SIZE: '10k' } });
    assert.match(err.message, /"history_size"/);
  });

  test('variables without prefix ignored', () => {
    const { config, warnings } = loadConfig({ env: { PRESENCE: 'true', HOME: '/root', ROTOR: 'x' } });
    assert.equal(config.presence, false);
    assert.deepEqual(warnings, []);
  });
});

describe('source precedence', () => {
  const file = (): string => configFile({ port: 9001, log_level: 'error', history_size: 10, api_key: 'from-file' });

  test('file applies over defaults', () => {
    const { config } = loadConfig({ file: file() });
    assert.equal(config.port, 9001);
    assert.equal(config.log_level, 'error');
    assert.equal(config.history_size, 10);
    assert.equal(config.api_key, 'from-file');
    assert.equal(config.address, '127.0.0.1');
  });

  test('env overrides file', () => {
    const { config } = loadConfig({ file: file(), env: { ROTOR_PORT: '9002', ROTOR_API_KEY: 'from-env' } });
    assert.equal(config.port, 9002);
    assert.equal(config.api_key, 'from-env');
    assert.equal(config.history_size, 10);
  });

  test('flags override env', () => {
    const { config } = loadConfig({
      file: file(),
      env: { ROTOR_PORT: '9002', ROTOR_LOG_LEVEL: 'warn' },
      flags: { port: '9003', log_level: 'debug' },
    });
    assert.equal(config.port, 9003);
    assert.equal(config.log_level, 'debug');
    assert.equal(config.api_key, 'from-file');
  });

  test('overrides apply last', () => {
    const { config } = loadConfig({ file: file(), flags: { port: '9003' }, overrides: { port: 0 } });
    assert.equal(config.port, 0);
  });

  test('bare bool flag means true', () => {
    const { config } = loadConfig({ flags: { api_insecure: true } });
    assert.equal(config.api_insecure, true);
  });

  test('bare flag needing value rejected', () => {
    const err = configError({ flags: { port: true } });
    assert.match(err.message, /--port/);
  });

  test('unknown flag rejected', () => {
    const err = configError({ flags: { prot: '9000' } });
    assert.match(err.message, /"prot"/);
  });
});

describe('unknown options', () => {
  test('file option warns, not fails', () => {
    const { config, warnings } = loadConfig({ file: configFile({ frobnicate: 1, history_size: 3 }) });
    assert.equal(config.history_size, 3);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /"frobnicate"/);
  });

  test('env option warns, not fails', () => {
    const { warnings } = loadConfig({ env: { ROTOR_FROBNICATE: '1' } });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /"frobnicate"/);
  });

  test('namespace option warns, not fails', () => {
    const { config, warnings } = loadConfig({ file: configFile({ namespaces: [{ name: 'chat', frobnicate: true }] }) });
    assert.equal(config.namespaces.length, 1);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /frobnicate/);
  });

  test('ignored option gives no warning', () => {
    const { warnings } = loadConfig({ file: configFile({ health: true }) });
    assert.deepEqual(warnings, []);
  });
});

describe('wrong types', () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['string for int', { history_size: 'ten' }, 'history_size'],
    ['negative int', { history_size: -1 }, 'history_size'],
    ['fraction for int', { client_channel_limit: 1.5 }, 'client_channel_limit'],
    ['port out of range', { port: 70000 }, 'port'],
    ['number for bool', { presence: 1 }, 'presence'],
    ['number for string', { api_key: 12345 }, 'api_key'],
    ['object for list', { allowed_origins: { origin: 'https://a.example' } }, 'allowed_origins'],
    ['list with number', { allowed_origins: ['https://a.example', 1] }, 'allowed_origins'],
    ['unknown enum value', { log_level: 'loud' }, 'log_level'],
    ['invalid duration text', { history_ttl: '5 minutes' }, 'history_ttl'],
    ['invalid namespace option', { namespaces: [{ name: 'chat', history_size: 'x' }] }, 'namespaces[0].history_size'],
    ['invalid regex', { channel_regex: '([' }, 'channel_regex'],
    ['numeric text for int', { history_size: '100' }, 'history_size'],
    ['text for bool', { presence: 'yes' }, 'presence'],
    ['text for list', { allowed_origins: '*' }, 'allowed_origins'],
    ['text in namespace', { namespaces: [{ name: 'chat', presence: 'true' }] }, 'namespaces[0].presence'],
  ];
  for (const [name, options, option] of cases) {
    test(`${name} names option`, () => {
      const err = configError({ file: configFile(options) });
      assert.ok(err.message.includes(`"${option}"`), err.message);
    });
  }

  test('same text from env accepted', () => {
    const { config } = loadConfig({ env: { ROTOR_HISTORY_SIZE: '100', ROTOR_PRESENCE: 'yes', ROTOR_ALLOWED_ORIGINS: '*' } });
    assert.equal(config.history_size, 100);
    assert.equal(config.presence, true);
    assert.deepEqual(config.allowed_origins, ['*']);
  });

  test('file not JSON rejected', () => {
    const path = join(dir.path, 'broken.json');
    writeFileSync(path, '{"history_size": 10,');
    const err = configError({ file: path });
    assert.ok(err.message.includes(path), err.message);
  });

  test('missing file rejected', () => {
    const path = join(dir.path, 'missing.json');
    const err = configError({ file: path });
    assert.ok(err.message.includes(path), err.message);
  });
});

describe('namespaces', () => {
  test('namespace defaults filled in', () => {
    const { config } = loadConfig({ file: configFile({ namespaces: [{ name: 'chat', presence: true }, { name: 'news.feed' }] }) });
    assert.deepEqual(
      config.namespaces.map((ns) => ns.name),
      ['chat', 'news.feed'],
    );
    assert.equal(config.namespaces[0]!.presence, true);
    assert.equal(config.namespaces[1]!.presence, false);
    assert.equal(config.namespaces[1]!.history_size, 0);
  });

  for (const name of ['a', 'bad name', 'chat:room', '', 42]) {
    test(`invalid name ${JSON.stringify(name)} rejected`, () => {
      const err = configError({ file: configFile({ namespaces: [{ name }] }) });
      assert.ok(err.message.includes('namespaces[0].name'), err.message);
    });
  }

  test('missing name rejected', () => {
    const err = configError({ file: configFile({ namespaces: [{ presence: true }] }) });
    assert.ok(err.message.includes('namespaces[0].name'), err.message);
  });

  test('duplicate namespace rejected', () => {
    const err = configError({ file: configFile({ namespaces: [{ name: 'chat' }, { name: 'news' }, { name: 'chat' }] }) });
    assert.ok(err.message.includes('"chat"'), err.message);
    assert.ok(err.message.includes('namespaces'), err.message);
  });

  test('namespaces not a list rejected', () => {
    const err = configError({ file: configFile({ namespaces: { chat: {} } }) });
    assert.ok(err.message.includes('"namespaces"'), err.message);
  });

  test('personal namespace must exist', () => {
    const err = configError({ file: configFile({ user_personal_channel_namespace: 'personal' }) });
    assert.ok(err.message.includes('"user_personal_channel_namespace"'), err.message);
  });
});

describe('cross-option checks', () => {
  test('pong_timeout equal to ping_interval', () => {
    const err = configError({ file: configFile({ ping_interval: '10s', pong_timeout: '10s' }) });
    assert.ok(err.message.includes('"pong_timeout"'), err.message);
  });

  test('pong_timeout above ping_interval', () => {
    const err = configError({ file: configFile({ ping_interval: '10s', pong_timeout: '15s' }) });
    assert.ok(err.message.includes('"pong_timeout"'), err.message);
  });

  test('pong_timeout below ping_interval', () => {
    const { config } = loadConfig({ file: configFile({ ping_interval: '10s', pong_timeout: '9s' }) });
    assert.equal(config.ping_interval, 10_000);
    assert.equal(config.pong_timeout, 9000);
  });

  test('default ping below pong rejected', () => {
    const err = configError({ file: configFile({ ping_interval: '5s' }) });
    assert.ok(err.message.includes('"pong_timeout"'), err.message);
  });
});

describe('aliases', () => {
  test('global_history_meta_ttl sets history_meta_ttl', () => {
    const { config, warnings } = loadConfig({ file: configFile({ global_history_meta_ttl: '2h' }) });
    assert.equal(config.history_meta_ttl, 7_200_000);
    assert.deepEqual(warnings, []);
  });

  test('alias from env', () => {
    const { config } = loadConfig({ env: { ROTOR_GLOBAL_HISTORY_META_TTL: '30m' } });
    assert.equal(config.history_meta_ttl, 1_800_000);
  });

  test('alias error names alias', () => {
    const err = configError({ file: configFile({ global_history_meta_ttl: 60 }) });
    assert.ok(err.message.includes('"global_history_meta_ttl"'), err.message);
  });

  test('other aliases resolve', () => {
    const { config } = loadConfig({ file: configFile({ message_size_limit: 1024, client_anonymous: true }) });
    assert.equal(config.websocket_message_size_limit, 1024);
    assert.equal(config.allow_anonymous_connect_without_token, true);
  });
});

describe('resolved config', () => {
  test('defaults without sources', () => {
    const { config, warnings } = loadConfig();
    assert.equal(config.port, 8000);
    assert.equal(config.ping_interval, 25_000);
    assert.equal(config.pong_timeout, 8000);
    assert.equal(config.history_meta_ttl, 720 * 3_600_000);
    assert.deepEqual(config.namespaces, []);
    assert.deepEqual(warnings, []);
  });

  test('config is frozen', () => {
    const { config } = loadConfig({ file: configFile({ namespaces: [{ name: 'chat' }] }) });
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.namespaces));
    assert.ok(Object.isFrozen(config.namespaces[0]));
  });
});
