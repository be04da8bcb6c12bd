/**
 * Prints the configuration options as Markdown tables, or with `--write FILE` replaces
 * the text between the `options:start` and `options:end` markers of FILE with them:
 * `node --import tsx tools/options-table.ts --write README.md`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { formatDuration } from '../src/config/duration.js';
import { CHANNEL_OPTIONS, GLOBAL_OPTIONS, OPTION_ALIASES, type OptionSpec } from '../src/config/options.js';

function shownDefault(spec: OptionSpec): string {
  const value = spec.default;
  if (spec.kind === 'duration') return `\`"${formatDuration(value as number)}"\``;
  if (spec.kind === 'strings') return '`[]`';
  if (spec.kind === 'string' || spec.kind === 'enum') return value === '' ? '`""`' : `\`"${String(value)}"\``;
  return `\`${String(value)}\``;
}

function table(title: string, options: Record<string, OptionSpec>): string {
  const aliases = new Map<string, string[]>();
  for (const [alias, name] of Object.entries(OPTION_ALIASES)) aliases.set(name, [...(aliases.get(name) ?? []), alias]);
  let text = `${title}\n\n| option | type | default | meaning |\n|---|---|---|---|\n`;
  for (const [name, spec] of Object.entries(options)) {
    const also = aliases.get(name);
    const type = spec.kind === 'enum' ? spec.values!.map((v) => `\`"${v}"\``).join(' / ') : spec.kind;
    text += `| \`${name}\`${also ? ` (also ${also.map((a) => `\`${a}\``).join(', ')})` : ''} | ${type} | ${shownDefault(spec)} | ${spec.help} |\n`;
  }
  return text;
}

const tables =
  table('Server and client options:', GLOBAL_OPTIONS) +
  '\n' +
  table('Channel options, at the top level for channels without a namespace and in each `namespaces` entry:', CHANNEL_OPTIONS);

const target = process.argv[2] === '--write' ? process.argv[3] : undefined;
if (target === undefined) {
  process.stdout.write(tables);
} else {
  const text = readFileSync(target, 'utf8');
  const start = text.indexOf('\n', text.indexOf('<!-- options:start'));
  const end = text.indexOf('<!-- options:end -->');
  if (start < 0 || end < start) throw new Error(`${target} has no options:start and options:end markers`);
  writeFileSync(target, `${text.slice(0, start + 1)}\n${tables}\n${text.slice(end)}`);
}
