// The orders app in JavaScript: reads its API key from Kustos with the unchanged AWS SDK for
// JavaScript v3 and no static key. The SDK finds everything in the environment the
// pod-credentials webhook set: AWS_CONTAINER_CREDENTIALS_FULL_URI and its token file, the
// endpoint (AWS_ENDPOINT_URL_SECRETS_MANAGER), the region; Node trusts Kustos's CA through
// NODE_EXTRA_CA_CERTS. It logs a fingerprint of what it read, never the value.
"use strict";
const crypto = require("node:crypto");
const { SecretsManagerClient, GetSecretValueCommand } = require("@aws-sdk/client-secrets-manager");

const secretId = process.env.SECRET_ID || "prod/orders/api-key";
const interval = 1000 * Number(process.env.INTERVAL_SECONDS || "10");
const client = new SecretsManagerClient({});
let seen = null;

function fingerprint(value) {
  let fields;
  try {
    fields = JSON.parse(value);
  } catch {
    fields = null;
  }
  if (typeof fields !== "object" || fields === null || Array.isArray(fields)) {
    fields = { value };
  }
  return Object.keys(fields).sort().map((key) => {
    const digest = crypto.createHash("sha256").update(String(fields[key])).digest("hex");
    return `${key} sha256 ${digest.slice(0, 12)}`;
  }).join(", ");
}

async function once() {
  try {
    const out = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
    const print = fingerprint(out.SecretString);
    if (print !== seen) {
      console.log(`orders-reader-js: read ${secretId} (${print}) with node ${process.version}`);
      seen = print;
    }
  } catch (err) {
    const status = err.$metadata ? err.$metadata.httpStatusCode : undefined;
    console.log(`orders-reader-js: ${secretId}: ${err.name} (HTTP ${status})`);
  }
}

(async () => {
  for (;;) {
    await once();
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
})();
