// A minimal processor for intake's processing API: claim, "process", complete.
// Run: node examples/worker.mjs [http://127.0.0.1:8080] [concurrency]
// A worker that dies mid-lease loses nothing: the lease runs out and another worker gets it.
const base = process.argv[2] ?? 'http://127.0.0.1:8080';
const concurrency = Number(process.argv[3] ?? 4);
const leaseSeconds = 30;

async function call(path, body) {
  const res = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = await res.json();
  if (!res.ok) throw Object.assign(new Error(json.error?.message ?? res.statusText), { status: res.status, code: json.error?.code });
  return json;
}

async function processOne(item) {
  // The real work goes here. Long work should extend its lease before it runs out:
  //   await call(`/v1/work/${item.id}/extend`, { lease_token: item.lease_token, lease_seconds: leaseSeconds });
  return { echoed: item.payload, processed_at: new Date().toISOString() };
}

async function loop(n) {
  for (;;) {
    let items;
    try {
      ({ items } = await call('/v1/work/claim', { limit: 10, lease_seconds: leaseSeconds }));
    } catch (err) {
      console.error(`worker ${n}: claim failed: ${err.message}`);
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    if (items.length === 0) {
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    for (const item of items) {
      try {
        const result = await processOne(item);
        await call(`/v1/work/${item.id}/complete`, { lease_token: item.lease_token, result });
        console.log(`worker ${n}: completed ${item.id}`);
      } catch (err) {
        // 409: the lease ran out and someone else has it now; anything else: give it back.
        if (err.status !== 409) await call(`/v1/work/${item.id}/release`, { lease_token: item.lease_token }).catch(() => {});
        console.error(`worker ${n}: ${item.id}: ${err.message}`);
      }
    }
  }
}

for (let i = 0; i < concurrency; i++) loop(i);
