// A throwaway certificate for 127.0.0.1, for the tests that speak HTTPS (nginx in front of
// the server, or the server's own TLS): made by openssl in a test's temporary folder and
// trusted by nobody, so the browsers that use it are told to ignore HTTPS errors.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

/** Writes `cert.pem` and `key.pem` (P-256) into `dir` and returns their paths. */
export function throwawayCertificate(dir: string): { cert: string; key: string } {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const out = spawnSync(
    'openssl',
    [
      'req', '-x509', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-keyout', key, '-out', cert,
      '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    ],
    { encoding: 'utf8' },
  );
  if (out.status !== 0) {
    throw new Error(`openssl could not make a certificate (${out.error ?? `status ${out.status}`}):\n${out.stderr}`);
  }
  return { cert, key };
}
