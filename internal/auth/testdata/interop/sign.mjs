// Independent RFC 9421 (HTTP Message Signatures) signer used by the Go
// interop tests in internal/auth. It signs with the third-party npm package
// `http-message-signatures` (pinned in package.json / package-lock.json), so
// the signature base is built by a different implementation than our server.
//
// Usage (cwd = this directory, after `npm ci`):
//
//   echo '{"method":"POST","url":"http://127.0.0.1:8080/v1/actions?x=1",
//          "body":"{}","key_id":"dg_test_abc","alg":"ed25519",
//          "key_base64":"<base64 32-byte seed>","created":1700000000,
//          "nonce":"<base64url>"}' | node sign.mjs
//
// stdout: {"content-digest":"...","signature-input":"...","signature":"..."}
// i.e. the headers to add to the request. Errors go to stderr, exit code 1.
//
// Profile (what the DAOGuard server requires):
//   - Content-Digest: sha-256=:<base64 SHA-256(body as UTF-8)>:  (RFC 9530)
//   - covered components: "@method" "@path" "@query" "content-digest"
//   - params, in this order: created, nonce, keyid, alg, tag="daoguard"
//   - label: sig1
//
// Only the library and Node built-ins are used. Set INTEROP_DEBUG=1 to get the
// signature base the library produced on stderr.

import { createHash, createHmac, createPrivateKey, sign as cryptoSign } from 'node:crypto';
import { httpbis } from 'http-message-signatures';

// PKCS#8 DER prefix for an Ed25519 private key; the 32-byte seed follows it.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function fail(msg) {
  process.stderr.write(`sign.mjs: ${msg}\n`);
  process.exit(1);
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function requireString(input, name, { allowEmpty = false } = {}) {
  const v = input[name];
  if (typeof v !== 'string') fail(`"${name}" must be a string`);
  if (!allowEmpty && v === '') fail(`"${name}" must not be empty`);
  return v;
}

function makeSigner(alg, keyBytes, keyId) {
  switch (alg) {
    case 'ed25519': {
      if (keyBytes.length !== 32) fail(`ed25519 key_base64 must decode to a 32-byte seed, got ${keyBytes.length} bytes`);
      const privateKey = createPrivateKey({
        key: Buffer.concat([ED25519_PKCS8_PREFIX, keyBytes]),
        format: 'der',
        type: 'pkcs8',
      });
      return { id: keyId, alg, sign: async (data) => cryptoSign(null, data, privateKey) };
    }
    case 'hmac-sha256':
      if (keyBytes.length === 0) fail('hmac-sha256 key_base64 must not be empty');
      return { id: keyId, alg, sign: async (data) => createHmac('sha256', keyBytes).update(data).digest() };
    default:
      return fail(`unsupported alg ${JSON.stringify(alg)} (want "ed25519" or "hmac-sha256")`);
  }
}

async function main() {
  let input;
  try {
    input = JSON.parse(await readStdin());
  } catch (e) {
    fail(`stdin is not valid JSON: ${e.message}`);
  }
  if (input === null || typeof input !== 'object' || Array.isArray(input)) fail('stdin must be a JSON object');

  const method = requireString(input, 'method');
  const url = requireString(input, 'url');
  const body = input.body === undefined || input.body === null ? '' : requireString(input, 'body', { allowEmpty: true });
  const keyId = requireString(input, 'key_id');
  const alg = requireString(input, 'alg');
  const keyBase64 = requireString(input, 'key_base64');
  const nonce = requireString(input, 'nonce');
  const created = input.created;
  // The library silently drops falsy parameter values, so insist on a positive integer.
  if (!Number.isSafeInteger(created) || created <= 0) fail('"created" must be a positive integer (unix seconds)');
  try {
    new URL(url);
  } catch (e) {
    fail(`"url" is not an absolute URL: ${e.message}`);
  }

  const key = makeSigner(alg, Buffer.from(keyBase64, 'base64'), keyId);

  const contentDigest = `sha-256=:${createHash('sha256').update(body, 'utf8').digest('base64')}:`;

  let signatureBase = null;
  const signingKey = {
    ...key,
    sign: async (data) => {
      signatureBase = data.toString('utf8');
      return key.sign(data);
    },
  };

  const signed = await httpbis.signMessage(
    {
      key: signingKey,
      name: 'sig1',
      fields: ['@method', '@path', '@query', 'content-digest'],
      params: ['created', 'nonce', 'keyid', 'alg', 'tag'],
      paramValues: {
        created: new Date(created * 1000),
        nonce,
        keyid: keyId,
        alg,
        tag: 'daoguard',
      },
    },
    {
      method,
      url,
      headers: { 'content-digest': contentDigest },
    },
  );

  if (process.env.INTEROP_DEBUG) process.stderr.write(`signature base:\n${signatureBase}\n`);

  const headers = {};
  for (const [name, value] of Object.entries(signed.headers)) headers[name.toLowerCase()] = value;
  if (!headers['signature-input'] || !headers.signature) fail('library did not produce Signature/Signature-Input');

  process.stdout.write(
    `${JSON.stringify({
      'content-digest': headers['content-digest'],
      'signature-input': headers['signature-input'],
      signature: headers.signature,
    })}\n`,
  );
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
