// legacy_loop.mjs runs the legacy three-tool loop with the official
// TypeScript MCP SDK client, as an agent written for that pattern does:
// call check_pending_events, ack each returned event (unless told not to),
// and call again while remaining > 0, at most 10 times. It prints one JSON
// line: the remaining of each call and the IDs received, in order.
//
// Usage: node legacy_loop.mjs MCP_URL TOKEN ack|noack
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token, mode] = process.argv.slice(2);
if (!url || !token || !["ack", "noack"].includes(mode)) {
  console.error("usage: node legacy_loop.mjs MCP_URL TOKEN ack|noack");
  process.exit(2);
}

const client = new Client({ name: "hookgate-ts-legacy-loop", version: "1" });
await client.connect(
  new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  }),
);

const remaining = [];
const ids = [];
for (let call = 0; call < 10; call++) {
  const result = await client.callTool({ name: "check_pending_events", arguments: {} });
  if (result.isError) throw new Error(`check_pending_events: ${JSON.stringify(result.content)}`);
  const batch = JSON.parse(result.content[0].text);
  remaining.push(batch.remaining);
  for (const e of batch.events) {
    ids.push(e.id);
    if (mode === "ack") {
      const acked = await client.callTool({ name: "ack_event", arguments: { event_id: e.id } });
      if (acked.isError) throw new Error(`ack_event ${e.id}: ${JSON.stringify(acked.content)}`);
    }
  }
  if (batch.remaining <= 0) break;
}
console.log(JSON.stringify({ remaining, ids }));
await client.close();
