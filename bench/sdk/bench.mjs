// GetSecretValue N times with the AWS SDK for JavaScript v3; prints each call's ms as JSON.
import { SecretsManagerClient, GetSecretValueCommand } from "@aws-sdk/client-secrets-manager";

const client = new SecretsManagerClient({ endpoint: process.env.KUSTOS_ENDPOINT,
                                          region: process.env.AWS_REGION });
const id = process.env.BENCH_SECRET_ID;
const warmup = 10, n = Number(process.env.BENCH_CALLS ?? "100");
const times = [];
for (let i = 0; i < warmup + n; i++) {
  const start = performance.now();
  const out = await client.send(new GetSecretValueCommand({ SecretId: id }));
  if (!out.SecretString) throw new Error("no value");
  if (i >= warmup) times.push(performance.now() - start);
}
console.log(JSON.stringify(times));
