/**
 * deploy/: the Kubernetes manifests and the compose file are wired to what the service really
 * serves (probe paths, the HPA's metric, ports, labels), and the shutdown budget covers the drain.
 * No cluster or Docker engine runs here, so the manifests are checked by reading them.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { helpText, loadConfig } from '../src/server/config.js';
import { ROOT, startServer, type TestServer, TINY_BERT } from './helpers.js';

const K8S = join(ROOT, 'deploy/kubernetes');
const docs = (file: string): any[] => parseAllDocuments(readFileSync(join(K8S, file), 'utf8')).map((d) => d.toJS());

describe('deploy/', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ modelDir: TINY_BERT });
  });
  afterAll(async () => server?.close());

  const [deployment, service] = docs('deployment.yaml');
  const container = deployment.spec.template.spec.containers[0];
  const env = Object.fromEntries(container.env.map((e: { name: string; value?: string }) => [e.name, e.value]));

  it('probes hit routes the service answers: readiness /ready, liveness /health', async () => {
    expect(container.readinessProbe.httpGet.path).toBe('/ready');
    expect(container.livenessProbe.httpGet.path).toBe('/health');
    for (const probe of [container.readinessProbe, container.livenessProbe, container.startupProbe]) {
      expect((await fetch(`${server.url}${probe.httpGet.path}`)).status).toBe(200);
      expect(container.ports.map((p: { name: string }) => p.name)).toContain(probe.httpGet.port);
    }
    // The image's port (Dockerfile ENV PORT) is the container port.
    const port = /ENV .*PORT=(\d+)/.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))![1];
    expect(container.ports[0].containerPort).toBe(Number(port));
  });

  it("the grace period covers preStop plus the configured drain plus the server's own margin", () => {
    const preStop = container.lifecycle.preStop.exec.command;
    expect(preStop[0]).toBe('sleep');
    const drainMs = Number(env.SHUTDOWN_TIMEOUT_MS);
    // main.ts exits by force 5 s after SHUTDOWN_TIMEOUT_MS.
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(Number(preStop[1]) + drainMs / 1000 + 5);
    // Every variable the manifest sets is one the service reads.
    for (const name of container.env.map((e: { name: string }) => e.name)) expect(helpText()).toMatch(new RegExp(`\\b${name}\\b`));
    const config = loadConfig([], { ...env, STORE_URL: 'postgres://u@h/db' });
    expect(config).toMatchObject({ storeUrl: 'postgres://u@h/db', workers: Number(env.WORKERS), shutdownTimeoutMs: drainMs });
    expect(container.env.find((e: { name: string }) => e.name === 'STORE_URL').valueFrom.secretKeyRef.name).toBe(
      docs('secret.example.yaml')[0].metadata.name,
    );
  });

  it("the HPA scales on a metric /metrics exports, the PDB and Service select the Deployment's pods", async () => {
    const [hpa] = docs('hpa.yaml');
    const [pdb] = docs('pdb.yaml');
    const metric = hpa.spec.metrics[0].pods.metric.name;
    const exported = await (await fetch(`${server.url}/metrics`)).text();
    // One series per served model (`model` label); the adapter rule sums them per pod.
    expect(exported).toMatch(new RegExp(`^${metric}\\{model="default"\\} \\d`, 'm'));
    expect(hpa.spec.scaleTargetRef.name).toBe(deployment.metadata.name);
    const labels = deployment.spec.template.metadata.labels;
    expect(deployment.spec.selector.matchLabels).toEqual(labels);
    expect(pdb.spec.selector.matchLabels).toEqual(labels);
    expect(service.spec.selector).toEqual(labels);
    expect(parse(docs('prometheus-adapter-rules.yaml')[0].data['config.yaml']).rules[0].name.as).toBe(metric);
    expect(docs('kustomization.yaml')[0].resources.sort()).toEqual(['deployment.yaml', 'hpa.yaml', 'pdb.yaml']);
  });

  it('compose: replicas reach the postgres service, haproxy health-checks /ready', () => {
    const compose = parse(readFileSync(join(ROOT, 'deploy/compose.yaml'), 'utf8'));
    const url = new URL(compose.services.embeddings.environment.STORE_URL);
    expect(Object.keys(compose.services)).toContain(url.hostname);
    const pg = compose.services[url.hostname].environment;
    expect([url.username, url.password, url.pathname.slice(1)]).toEqual([pg.POSTGRES_USER, pg.POSTGRES_PASSWORD, pg.POSTGRES_DB]);
    const cfg = readFileSync(join(ROOT, 'deploy/haproxy.cfg'), 'utf8');
    expect(cfg).toMatch(/option httpchk GET \/ready/);
    expect(cfg).toMatch(/server-template \w+ \d+-\d+ embeddings:8080/);
    if (spawnSync('haproxy', ['-v']).status === 0) {
      const check = spawnSync('haproxy', ['-c', '-f', join(ROOT, 'deploy/haproxy.cfg')], { encoding: 'utf8' });
      expect(check.status, check.stderr).toBe(0);
    }
  });
});
