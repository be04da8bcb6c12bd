import { readFileSync } from 'node:fs';
import { parseDuration } from './duration.js';
import {
  CHANNEL_OPTIONS,
  GLOBAL_OPTIONS,
  IGNORED_OPTIONS,
  NAMESPACE_NAME,
  OPTION_ALIASES,
  type Config,
  type Namespace,
  type OptionSpec,
} from './options.js';

/** A configuration that cannot start the server. The message names the option and the expected value. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface ConfigSources {
  /** Path of a JSON config file. */
  readonly file?: string;
  /** Environment to read `ROTOR_<OPTION>` variables from. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Command-line values by option name; a bare flag is `true`. */
  readonly flags?: Readonly<Record<string, string | boolean>>;
  /** Values set by the embedding program, applied last (tests use this). */
  readonly overrides?: Readonly<Record<string, unknown>>;
}

export interface LoadedConfig {
  readonly config: Config;
  /** Problems that did not stop the start, such as unknown options. */
  readonly warnings: readonly string[];
}

const ALL_OPTIONS: Readonly<Record<string, OptionSpec>> = { ...GLOBAL_OPTIONS, ...CHANNEL_OPTIONS };

/** Returns the canonical name of an option, resolving aliases, or undefined when unknown. */
export function canonicalOptionName(name: string): string | undefined {
  if (name in ALL_OPTIONS || name === 'namespaces') return name;
  return OPTION_ALIASES[name];
}

/** Returns the spec of a scalar option by canonical name or alias. */
export function optionSpec(name: string): OptionSpec | undefined {
  const canonical = canonicalOptionName(name);
  return canonical === undefined ? undefined : ALL_OPTIONS[canonical];
}

function expected(spec: OptionSpec): string {
  switch (spec.kind) {
    case 'bool':
      return 'true or false';
    case 'int': {
      const range = spec.max !== undefined ? ` from ${spec.min ?? 0} to ${spec.max}` : ` >= ${spec.min ?? 0}`;
      return `an integer${range}`;
    }
    case 'duration':
      return spec.min ? 'a positive duration such as "25s", "1h30m" or "500ms"' : 'a duration such as "300s", "720h" or "0"';
    case 'string':
      return 'a string';
    case 'strings':
      return 'a list of strings';
    case 'enum':
      return `one of ${spec.values!.map((v) => JSON.stringify(v)).join(', ')}`;
  }
}

function invalid(name: string, spec: OptionSpec, value: unknown, where: string): ConfigError {
  const shown = typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
  return new ConfigError(`invalid value for option "${name}" (${where}): expected ${expected(spec)}, got ${shown}`);
}

/**
 * Converts one raw value to the option's type. Values from the environment and the
 * command line are text (`textual`) and are parsed; JSON values from the config file must
 * already have the option's type, so `"history_size": "100"` is an error there.
 */
function convert(name: string, spec: OptionSpec, value: unknown, where: string, textual: boolean): unknown {
  const fromText = textual && typeof value === 'string' && spec.kind !== 'string' && spec.kind !== 'enum';
  switch (spec.kind) {
    case 'bool': {
      if (typeof value === 'boolean') return value;
      if (fromText) {
        const lower = (value as string).toLowerCase();
        if (['true', '1', 'yes', 'on'].includes(lower)) return true;
        if (['false', '0', 'no', 'off'].includes(lower)) return false;
      }
      throw invalid(name, spec, value, where);
    }
    case 'int': {
      const number = fromText && /^-?\d+$/.test(value as string) ? Number(value) : value;
      if (typeof number !== 'number' || !Number.isSafeInteger(number)) throw invalid(name, spec, value, where);
      if (number < (spec.min ?? 0) || (spec.max !== undefined && number > spec.max)) throw invalid(name, spec, value, where);
      return number;
    }
    case 'duration': {
      // A bare number is ambiguous (Go reads it as nanoseconds, people mean seconds), so only 0 is accepted.
      let ms: number | undefined;
      if (value === 0) ms = 0;
      else if (typeof value === 'string') ms = parseDuration(value);
      if (ms === undefined || ms < (spec.min ?? 0)) throw invalid(name, spec, value, where);
      return ms;
    }
    case 'string':
      if (typeof value !== 'string') throw invalid(name, spec, value, where);
      return value;
    case 'strings': {
      if (fromText) {
        const text = (value as string).trim();
        if (text.startsWith('[')) return convert(name, spec, parseJson(text, name, where), where, false);
        return text === '' ? [] : text.split(/[\s,]+/).filter(Boolean);
      }
      if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) throw invalid(name, spec, value, where);
      return Object.freeze([...value]);
    }
    case 'enum':
      if (typeof value !== 'string' || !spec.values!.includes(value)) throw invalid(name, spec, value, where);
      return value;
  }
}

function parseJson(text: string, name: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`invalid JSON in option "${name}" (${where}): ${(err as Error).message}`);
  }
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigError(`config file ${path} not found: check the path, or create one with "rotor genconfig"`);
    throw new ConfigError(`cannot read config file ${path}: ${code ?? (err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path} must contain a JSON object of options`);
  }
  return parsed as Record<string, unknown>;
}

function resolveNamespaces(raw: unknown, where: string, warnings: string[]): readonly Namespace[] {
  if (!Array.isArray(raw)) throw new ConfigError(`invalid value for option "namespaces" (${where}): expected a list of objects with "name"`);
  const seen = new Set<string>();
  return Object.freeze(
    raw.map((item: unknown, index) => {
      const path = `namespaces[${index}]`;
      if (item === null || typeof item !== 'object' || Array.isArray(item)) {
        throw new ConfigError(`invalid value for option "${path}" (${where}): expected an object with "name"`);
      }
      const entry = item as Record<string, unknown>;
      const name = entry.name;
      if (typeof name !== 'string' || !NAMESPACE_NAME.test(name)) {
        throw new ConfigError(
          `invalid value for option "${path}.name" (${where}): expected a name of 2 or more letters, digits, "-", "_" or ".", got ${JSON.stringify(name)}`,
        );
      }
      if (seen.has(name)) throw new ConfigError(`duplicate namespace "${name}" in option "namespaces" (${where})`);
      seen.add(name);
      const namespace: Record<string, unknown> = { name };
      for (const [key, spec] of Object.entries(CHANNEL_OPTIONS)) namespace[key] = spec.default;
      for (const [key, value] of Object.entries(entry)) {
        if (key === 'name') continue;
        const spec = (CHANNEL_OPTIONS as Record<string, OptionSpec>)[key];
        if (spec === undefined) {
          warnings.push(`unknown option "${path}.${key}" (${where}) is ignored`);
          continue;
        }
        namespace[key] = convert(`${path}.${key}`, spec, value, where, false);
      }
      return Object.freeze(namespace) as unknown as Namespace;
    }),
  );
}

/**
 * Resolves the configuration from defaults, the config file, `ROTOR_<OPTION>` environment
 * variables, command-line flags and overrides, later sources winning. Unknown options are
 * warnings, so that newer Centrifugo configs still start. A wrong type or value throws a
 * ConfigError naming the option and the expected value. The result is frozen.
 */
export function loadConfig(sources: ConfigSources = {}): LoadedConfig {
  const warnings: string[] = [];
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(ALL_OPTIONS)) values[name] = spec.default;
  let namespaces: readonly Namespace[] = [];

  /** `strict` makes an unknown name an error; `textual` marks values that arrive as text. */
  const apply = (rawName: string, value: unknown, where: string, strict: boolean, textual: boolean): void => {
    if (rawName === 'namespaces') {
      const parsed = typeof value === 'string' ? parseJson(value, 'namespaces', where) : value;
      namespaces = resolveNamespaces(parsed, where, warnings);
      return;
    }
    const name = canonicalOptionName(rawName);
    if (name === undefined) {
      if (IGNORED_OPTIONS.has(rawName)) return;
      if (strict) throw new ConfigError(`unknown option "${rawName}" (${where})`);
      warnings.push(`unknown option "${rawName}" (${where}) is ignored`);
      return;
    }
    values[name] = convert(rawName, ALL_OPTIONS[name]!, value, where, textual);
  };

  if (sources.file !== undefined) {
    for (const [name, value] of Object.entries(readConfigFile(sources.file))) apply(name, value, sources.file, false, false);
  }
  for (const [key, value] of Object.entries(sources.env ?? {})) {
    if (!key.startsWith('ROTOR_') || value === undefined) continue;
    apply(key.slice('ROTOR_'.length).toLowerCase(), value, `environment variable ${key}`, false, true);
  }
  for (const [name, value] of Object.entries(sources.flags ?? {})) {
    const spec = optionSpec(name);
    if (value === true && spec !== undefined && spec.kind !== 'bool') {
      throw new ConfigError(`flag --${name} needs a value: expected ${expected(spec)}`);
    }
    apply(name, value === true ? 'true' : value, `flag --${name}`, true, true);
  }
  for (const [name, value] of Object.entries(sources.overrides ?? {})) apply(name, value, 'overrides', true, false);

  const config = Object.freeze({ ...values, namespaces }) as Config;
  validate(config);
  return { config, warnings };
}

function validate(config: Config): void {
  if (config.pong_timeout >= config.ping_interval) {
    throw new ConfigError(
      `invalid value for option "pong_timeout": expected less than ping_interval (${config.ping_interval} ms), got ${config.pong_timeout} ms`,
    );
  }
  for (const name of ['channel_namespace_boundary', 'channel_user_boundary', 'channel_user_separator'] as const) {
    if (config[name] === '') throw new ConfigError(`invalid value for option "${name}": expected a non-empty string`);
  }
  const regexOwners: Array<[string, string]> = [['channel_regex', config.channel_regex]];
  config.namespaces.forEach((ns, index) => regexOwners.push([`namespaces[${index}].channel_regex`, ns.channel_regex]));
  for (const [name, pattern] of regexOwners) {
    if (pattern === '') continue;
    try {
      new RegExp(pattern);
    } catch (err) {
      throw new ConfigError(`invalid value for option "${name}": expected a regular expression, got ${JSON.stringify(pattern)} (${(err as Error).message})`);
    }
  }
  if (config.user_personal_channel_namespace !== '' && !config.namespaces.some((ns) => ns.name === config.user_personal_channel_namespace)) {
    throw new ConfigError(
      `invalid value for option "user_personal_channel_namespace": expected the name of a configured namespace, got ${JSON.stringify(config.user_personal_channel_namespace)}`,
    );
  }
}
