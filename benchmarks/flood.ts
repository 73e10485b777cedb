/**
 * Goodput under a flood of instant retries (issue 13, point 10). Clients that ignore Retry-After
 * resend the moment they get a 429; shedding exists so that the work admitted still runs at full
 * speed. In one run, per service build: successful requests/s with a few connections (uncontended)
 * and with many (the flood), each request 32 inputs, and the ratio flood / uncontended. The load
 * generator (autocannon) runs in this process: its CPU time is reported beside the service's, since
 * on a small machine it competes with the service for the same cores.
 *
 * Usage: npm run bench:flood [-- --seconds 15 --flood 256 --before /path/to/other/checkout]
 * (`--before`: a checkout with its own `npm run build` done, measured first in the same run.)
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { fmt, ROOT, type Service, startService } from './lib.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '15' },
    calm: { type: 'string', default: '4' },
    flood: { type: 'string', default: '256' },
    inputs: { type: 'string', default: '32' },
    port: { type: 'string', default: '18281' },
    before: { type: 'string' },
    env: { type: 'string', multiple: true, default: [] },
  },
});
const seconds = Number(values.seconds);
const inputsPerRequest = Number(values.inputs);
const extraEnv = Object.fromEntries(values.env!.map((kv) => kv.split('=') as [string, string]));

const WORDS =
  'the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were her she there been one all we their has would when if so no'.split(
    ' ',
  );
/** Distinct sentences of about 12 words, so that no two requests are identical. */
function body(seed: number): string {
  const inputs = Array.from({ length: inputsPerRequest }, (_, i) =>
    Array.from({ length: 12 }, (_, w) => WORDS[(seed * 31 + i * 7 + w * 13 + ((w * w) % 5)) % WORDS.length]).join(' '),
  );
  return JSON.stringify({ inputs });
}
const bodies = Array.from({ length: 64 }, (_, i) => body(i));

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

interface Result {
  connections: number;
  goodput: number;
  refusedPerS: number;
  otherPerS: number;
  p50: number;
  p99: number;
  generatorCpu: number;
  serviceCpu: number;
}

async function drive(service: Service, connections: number): Promise<Result> {
  let ok = 0;
  let refused = 0;
  let other = 0;
  const gen0 = process.cpuUsage();
  const svc0 = cpuSeconds(service.child.pid!);
  const t0 = performance.now();
  const result = await autocannon({
    url: `${service.url}/embed`,
    connections,
    duration: seconds,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    requests: bodies.map((b) => ({
      body: b,
      onResponse: (status: number) => {
        if (status === 200) ok++;
        else if (status === 429) refused++;
        else other++;
      },
    })),
  });
  const wall = (performance.now() - t0) / 1000;
  const gen = process.cpuUsage(gen0);
  const svc = cpuSeconds(service.child.pid!) - svc0;
  return {
    connections,
    goodput: ok / wall,
    refusedPerS: refused / wall,
    otherPerS: other / wall,
    p50: result.latency.p50,
    p99: result.latency.p99,
    generatorCpu: (gen.user + gen.system) / 1e6 / wall,
    serviceCpu: svc / wall,
  };
}

async function measure(name: string, root: string, port: number): Promise<{ name: string; calm: Result; flood: Result }> {
  const service = await startService({ ...extraEnv }, port, root);
  try {
    await drive(service, 2); // warm-up, not reported
    const calm = await drive(service, Number(values.calm));
    const flood = await drive(service, Number(values.flood));
    return { name, calm, flood };
  } finally {
    await service.stop();
  }
}

console.log(`# Goodput under a flood of instant retries: default model, ${inputsPerRequest} inputs/request, ${seconds}s per run`);
console.log(
  `CPU: ${cpus()[0]?.model ?? 'unknown'} × ${cpus().length} (load average at start: ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')})\n`,
);
const builds: Array<{ name: string; root: string }> = [];
if (values.before) builds.push({ name: `before (${values.before})`, root: values.before });
builds.push({ name: 'this checkout', root: ROOT });
const measured = [];
let port = Number(values.port);
for (const b of builds) measured.push(await measure(b.name, b.root, port++));

console.log(
  '| build | connections | 200s/s | 429s/s | other/s | p50 ms | p99 ms | generator CPU (cores) | service CPU (cores) | flood / uncontended |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const m of measured) {
  for (const r of [m.calm, m.flood]) {
    const ratio = r === m.flood ? fmt(m.flood.goodput / m.calm.goodput, 2) : '';
    console.log(
      `| ${m.name} | ${r.connections} | ${fmt(r.goodput)} | ${fmt(r.refusedPerS)} | ${fmt(r.otherPerS)} | ${r.p50} | ${r.p99} | ${fmt(r.generatorCpu, 2)} | ${fmt(r.serviceCpu, 2)} | ${ratio} |`,
    );
  }
}
