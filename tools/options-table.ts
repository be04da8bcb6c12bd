/**
 * Prints the configuration options as Markdown tables, or with `--write FILE` replaces
 * the text between the `options:start` and `options:end` markers of FILE with them:
 * `node --import tsx tools/options-table.ts --write README.md`. A FILE named `*.ru.md`
 * gets the Russian descriptions of tools/options-help.ru.json, which must cover every option.
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

interface Language {
  readonly header: string;
  readonly also: string;
  readonly globalTitle: string;
  readonly channelTitle: string;
  help(name: string, spec: OptionSpec): string;
}

const ENGLISH: Language = {
  header: '| option | type | default | meaning |',
  also: 'also',
  globalTitle: 'Server and client options:',
  channelTitle: 'Channel options, at the top level for channels without a namespace and in each `namespaces` entry:',
  help: (_name, spec) => spec.help,
};

function russian(): Language {
  const help = JSON.parse(readFileSync(new URL('./options-help.ru.json', import.meta.url), 'utf8')) as Record<string, string>;
  return {
    header: '| опция | тип | по умолчанию | значение |',
    also: 'или',
    globalTitle: 'Опции сервера и клиентов:',
    channelTitle: 'Опции каналов: на верхнем уровне для каналов без пространства имён и в каждом элементе `namespaces`:',
    help: (name) => {
      const text = help[name];
      if (text === undefined) throw new Error(`tools/options-help.ru.json has no description of option "${name}"`);
      return text;
    },
  };
}

function table(title: string, options: Record<string, OptionSpec>, language: Language): string {
  const aliases = new Map<string, string[]>();
  for (const [alias, name] of Object.entries(OPTION_ALIASES)) aliases.set(name, [...(aliases.get(name) ?? []), alias]);
  let text = `${title}\n\n${language.header}\n|---|---|---|---|\n`;
  for (const [name, spec] of Object.entries(options)) {
    const also = aliases.get(name);
    const type = spec.kind === 'enum' ? spec.values!.map((v) => `\`"${v}"\``).join(' / ') : spec.kind;
    const aliasText = also ? ` (${language.also} ${also.map((a) => `\`${a}\``).join(', ')})` : '';
    text += `| \`${name}\`${aliasText} | ${type} | ${shownDefault(spec)} | ${language.help(name, spec)} |\n`;
  }
  return text;
}

const target = process.argv[2] === '--write' ? process.argv[3] : undefined;
const language = target?.endsWith('.ru.md') ? russian() : ENGLISH;
const tables = table(language.globalTitle, GLOBAL_OPTIONS, language) + '\n' + table(language.channelTitle, CHANNEL_OPTIONS, language);

if (target === undefined) {
  process.stdout.write(tables);
} else {
  const text = readFileSync(target, 'utf8');
  const start = text.indexOf('\n', text.indexOf('<!-- options:start'));
  const end = text.indexOf('<!-- options:end -->');
  if (start < 0 || end < start) throw new Error(`${target} has no options:start and options:end markers`);
  writeFileSync(target, `${text.slice(0, start + 1)}\n${tables}\n${text.slice(end)}`);
}
