/**
 * HTTPS + basic-auth reverse proxy in front of the local schema registry. Apicurio 3.0.9 has no basic
 * authentication of its own (only OIDC with Keycloak), so the secured-cluster test puts this real
 * TLS listener with a real credential check in front of it, as a bank's gateway would be.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';

export interface RegistryProxy {
  /** https://127.0.0.1:PORT/apis/ccompat/v7 */
  url: string;
  /** Requests refused for missing or wrong credentials. */
  refused(): number;
  close(): Promise<void>;
}

export async function startRegistryProxy(options: { upstream: string; certificate: string; key: string; username: string; password: string }): Promise<RegistryProxy> {
  const upstream = new URL(options.upstream);
  const expected = Buffer.from(`Basic ${Buffer.from(`${options.username}:${options.password}`).toString('base64')}`);
  let refused = 0;
  const server: Server = createServer({ cert: readFileSync(options.certificate), key: readFileSync(options.key) }, (req, res) => {
    const given = Buffer.from(req.headers.authorization ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      refused++;
      res.writeHead(401, { 'www-authenticate': 'Basic realm="schema registry"', 'content-type': 'application/json' });
      res.end(JSON.stringify({ error_code: 401, message: 'Unauthorized' }));
      return;
    }
    const headers = { ...req.headers, host: upstream.host };
    delete headers.authorization;
    const forward = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forward.on('error', (err) => {
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error_code: 502, message: err.message }));
    });
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}${upstream.pathname}`,
    refused: () => refused,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
