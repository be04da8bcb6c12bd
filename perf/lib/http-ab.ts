/**
 * Runs ApacheBench (ab) and parses its report. ab counts non-2xx responses as complete
 * and leaves out the "Non-2xx responses" line when there are none. It takes the expected
 * document length from the first response and counts any later response of another
 * length as a failed request. `checkAbResult` therefore checks all three numbers.
 */
import { spawn } from 'node:child_process';

export interface AbResult {
  readonly documentPath: string;
  /** Length of the first response body; ab compares every later body with it. */
  readonly documentLength: number;
  readonly concurrency: number;
  readonly timeTakenSeconds: number;
  readonly completeRequests: number;
  readonly failedRequests: number;
  /** The breakdown ab prints after a non-zero failure count, for example "(Connect: 0, Receive: 0, Length: 5, Exceptions: 0)". */
  readonly failedDetail: string;
  /** 0 when ab printed no "Non-2xx responses" line. */
  readonly non2xxResponses: number;
  /** Requests served on a reused connection; undefined without -k. */
  readonly keepAliveRequests: number | undefined;
  readonly totalTransferredBytes: number;
  readonly htmlTransferredBytes: number;
  readonly requestsPerSecond: number;
  /** Mean time per request as one client sees it, in milliseconds. */
  readonly meanRequestMs: number;
  readonly transferRateKBps: number;
  /** Percentile (50, 66, ..., 100) to milliseconds, from ab's "served within" table. */
  readonly percentilesMs: ReadonlyMap<number, number>;
}

export interface AbRun {
  readonly url: string;
  readonly requests: number;
  readonly concurrency: number;
  readonly keepAlive: boolean;
}

/** Runs ab and resolves with its parsed report; rejects when ab exits with an error. */
export function runAb(ab: string, run: AbRun): Promise<{ result: AbResult; output: string }> {
  const args = ['-n', String(run.requests), '-c', String(run.concurrency), ...(run.keepAlive ? ['-k'] : []), run.url];
  return new Promise((resolve, reject) => {
    const child = spawn(ab, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.once('error', (err) => reject(new Error(`cannot run ab (${ab}): ${err.message}`)));
    child.once('close', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`ab ${args.join(' ')} failed (${code ?? signal}):\n${output.slice(-2000)}`));
        return;
      }
      try {
        resolve({ result: parseAbOutput(output), output });
      } catch (err) {
        reject(err);
      }
    });
  });
}

/** Parses the report ab 2.3 prints. Throws when a line every report has is missing. */
export function parseAbOutput(text: string): AbResult {
  const field = (label: string): string => {
    const match = new RegExp(`^${label}:\\s+(.+)$`, 'm').exec(text);
    if (match === null) throw new Error(`ab output has no "${label}" line:\n${text.slice(-2000)}`);
    return match[1]!.trim();
  };
  const optional = (label: string): string | undefined => new RegExp(`^${label}:\\s+(.+)$`, 'm').exec(text)?.[1]?.trim();
  const leadingNumber = (value: string, label: string): number => {
    const parsed = Number.parseFloat(value);
    if (Number.isNaN(parsed)) throw new Error(`ab output has no number in "${label}: ${value}"`);
    return parsed;
  };

  const failedMatch = /^Failed requests:\s+(\d+)\s*\n(\s+\(.*\))?/m.exec(text);
  if (failedMatch === null) throw new Error(`ab output has no "Failed requests" line:\n${text.slice(-2000)}`);
  const percentiles = new Map<number, number>();
  for (const match of text.matchAll(/^\s*(\d+)%\s+(\d+)/gm)) percentiles.set(Number(match[1]), Number(match[2]));
  const keepAlive = optional('Keep-Alive requests');
  const non2xx = optional('Non-2xx responses');

  return {
    documentPath: field('Document Path'),
    documentLength: leadingNumber(field('Document Length'), 'Document Length'),
    concurrency: leadingNumber(field('Concurrency Level'), 'Concurrency Level'),
    timeTakenSeconds: leadingNumber(field('Time taken for tests'), 'Time taken for tests'),
    completeRequests: leadingNumber(field('Complete requests'), 'Complete requests'),
    failedRequests: Number(failedMatch[1]),
    failedDetail: failedMatch[2]?.trim() ?? '',
    non2xxResponses: non2xx === undefined ? 0 : leadingNumber(non2xx, 'Non-2xx responses'),
    keepAliveRequests: keepAlive === undefined ? undefined : leadingNumber(keepAlive, 'Keep-Alive requests'),
    totalTransferredBytes: leadingNumber(field('Total transferred'), 'Total transferred'),
    htmlTransferredBytes: leadingNumber(field('HTML transferred'), 'HTML transferred'),
    requestsPerSecond: leadingNumber(field('Requests per second'), 'Requests per second'),
    meanRequestMs: leadingNumber(field('Time per request'), 'Time per request'),
    transferRateKBps: leadingNumber(field('Transfer rate'), 'Transfer rate'),
    percentilesMs: percentiles,
  };
}

/**
 * Lists what is wrong with a run: requests that did not complete, failed requests,
 * non-2xx responses, and a document length other than `expectedLength`. An empty list
 * means the run is valid.
 */
export function checkAbResult(result: AbResult, requests: number, expectedLength: number): string[] {
  const problems: string[] = [];
  if (result.completeRequests !== requests) problems.push(`${result.completeRequests} of ${requests} requests completed`);
  if (result.failedRequests !== 0) problems.push(`${result.failedRequests} failed requests ${result.failedDetail}`.trim());
  if (result.non2xxResponses !== 0) problems.push(`${result.non2xxResponses} non-2xx responses`);
  if (result.documentLength !== expectedLength) problems.push(`document length ${result.documentLength} bytes, expected ${expectedLength}`);
  const expectedBodyBytes = expectedLength * requests;
  if (result.htmlTransferredBytes !== expectedBodyBytes) problems.push(`${result.htmlTransferredBytes} body bytes transferred, expected ${expectedBodyBytes}`);
  return problems;
}
