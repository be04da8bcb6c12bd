/**
 * Output of the pub/sub benchmarks: number formatting, the script's own section of
 * perf/RESULTS.md (other scripts write other sections of the same file), and a
 * hand-written SVG bar chart.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

/** Formats a count per second with a k or M suffix, for example "1.23M". */
export function formatRate(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  return value.toFixed(0);
}

/** Formats a number with `digits` decimals, or "n/a". */
export function formatNumber(value: number, digits = 2): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

/** Formats a byte count in KB (1,024 bytes) or MB. */
export function formatBytes(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return Math.abs(value) >= 1024 * 1024 ? `${(value / 1024 / 1024).toFixed(1)} MB` : `${(value / 1024).toFixed(1)} KB`;
}

/** Returns a / b, or NaN when either is missing or b is 0. */
export function ratio(a: number | undefined, b: number | undefined): number {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return Number.NaN;
  return a / b;
}

/** Formats a ratio as "2.31x". */
export function formatRatio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}x` : 'n/a';
}

/** Renders a Markdown table. */
export function markdownTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/**
 * Writes one section of a shared Markdown file, between `<!-- id:begin -->` and
 * `<!-- id:end -->`. The file is read again right before writing and only that section
 * is replaced (or appended), because other scripts write their own sections of it.
 */
export function writeSection(file: string, id: string, body: string): void {
  const begin = `<!-- ${id}:begin -->`;
  const end = `<!-- ${id}:end -->`;
  const section = `${begin}\n${body.trim()}\n${end}`;
  const current = existsSync(file) ? readFileSync(file, 'utf8') : '# Performance results\n';
  const from = current.indexOf(begin);
  const to = current.indexOf(end);
  const next = from !== -1 && to > from
    ? `${current.slice(0, from)}${section}${current.slice(to + end.length)}`
    : `${current.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, next);
}

/** One group of bars: a measure, with one value per server. */
export interface ChartGroup {
  readonly title: string;
  /** Meaning of the bar length, for example "deliveries/s, higher is better". */
  readonly unit: string;
  readonly values: ReadonlyArray<{ readonly label: string; readonly value: number; readonly text: string }>;
}

const BAR_COLORS = ['#2f6db5', '#e07b39', '#4f9a5a', '#8a63b8'];

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Draws horizontal bar groups, one panel per measure, each scaled to its own largest
 * value, with the value written after each bar. Missing values (NaN) get no bar and "n/a".
 */
export function barChartSvg(title: string, subtitle: string, groups: readonly ChartGroup[]): string {
  const width = 760;
  const labelWidth = 110;
  const barMax = 470;
  const barHeight = 18;
  const barGap = 6;
  const panelGap = 26;
  const parts: string[] = [];
  let y = 58;
  for (const group of groups) {
    parts.push(`<text x="16" y="${y}" class="panel">${escapeXml(group.title)}</text>`);
    parts.push(`<text x="${width - 16}" y="${y}" class="unit" text-anchor="end">${escapeXml(group.unit)}</text>`);
    y += 10;
    const largest = Math.max(...group.values.map((entry) => (Number.isFinite(entry.value) ? entry.value : 0)), Number.MIN_VALUE);
    group.values.forEach((entry, index) => {
      const length = Number.isFinite(entry.value) ? Math.max(1, (entry.value / largest) * barMax) : 0;
      const color = BAR_COLORS[index % BAR_COLORS.length]!;
      parts.push(`<text x="${labelWidth - 8}" y="${y + barHeight - 5}" text-anchor="end">${escapeXml(entry.label)}</text>`);
      if (length > 0) parts.push(`<rect x="${labelWidth}" y="${y}" width="${length.toFixed(1)}" height="${barHeight}" fill="${color}"/>`);
      parts.push(`<text x="${labelWidth + length + 6}" y="${y + barHeight - 5}">${escapeXml(entry.text)}</text>`);
      y += barHeight + barGap;
    });
    y += panelGap;
  }
  const height = y + 4;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">
<style>.title{font-size:17px;font-weight:bold}.panel{font-weight:bold}.unit{fill:#555}.sub{fill:#555;font-size:12px}</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="16" y="24" class="title">${escapeXml(title)}</text>
<text x="16" y="42" class="sub">${escapeXml(subtitle)}</text>
${parts.join('\n')}
</svg>
`;
}
