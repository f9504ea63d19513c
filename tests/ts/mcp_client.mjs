// An MCP host's view of an LLMMixer server, through the official TypeScript SDK (@modelcontextprotocol/sdk), the
// client Claude Desktop and the MCP Inspector are built on.
//
//   node mcp_client.mjs PLAN.json
//
// PLAN: {"transport": {"kind": "stdio", "command", "args", "env", "cwd"} | {"kind": "http", "url"},
//        "ops": [OP, ...]}
// OP:   {"op": "list_tools"}
//       {"op": "call", "name", "arguments", "progress": bool, "repeat": n, "abort_after_deltas": k,
//        "bind": {"arg": [op_index, "key"]}}   (an argument taken from an earlier op's first payload)
//       {"op": "sleep", "ms": n}               (keep the session open, e.g. after an abort)
//       {"op": "ping", "repeat": n}            (round-trip seconds of each ping: this run's own latency baseline)
//
// Prints one JSON object: {"server": {name, version}, "ops": [...]}, where a call op is a list of outcomes
// {isError, structuredContent, payload (the first JSON text), firstText, deltas, thrown: {code, message}, abortedAt}.
// Times are wall-clock seconds (Date.now() / 1000), to compare with the emulators' records.
//
// The SDK is found under $LLMMIXER_NODE_MODULES (the repo's .ci/node/node_modules); it is imported by path, as
// this file does not live under that node_modules.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const modules = process.env.LLMMIXER_NODE_MODULES;
if (!modules) throw new Error('set LLMMIXER_NODE_MODULES to the node_modules that holds @modelcontextprotocol/sdk');
const sdk = (path) => import(pathToFileURL(join(modules, '@modelcontextprotocol/sdk/dist/esm', path)).href);

const { Client } = await sdk('client/index.js');
const { StdioClientTransport } = await sdk('client/stdio.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));

function transportFor(spec) {
  if (spec.kind === 'stdio') {
    return new StdioClientTransport({ command: spec.command, args: spec.args ?? [], env: spec.env, cwd: spec.cwd,
                                      stderr: 'inherit' });
  }
  return new StreamableHTTPClientTransport(new URL(spec.url), spec.headers ? { requestInit: { headers: spec.headers } }
                                                                             : undefined);
}

// The first text block that holds a JSON object (an error's JSON follows its plain first line).
function payloadOf(result) {
  for (const block of result.content ?? []) {
    if (block.type !== 'text' || !block.text.trimStart().startsWith('{')) continue;
    try { return JSON.parse(block.text); } catch { continue; }
  }
  return null;
}

const errors = [];
const client = new Client({ name: 'llmmixer-ts-host', version: '1.0.0' });
client.onerror = (error) => errors.push(String(error?.message ?? error));
await client.connect(transportFor(plan.transport));

async function callOnce(op, args) {
  const deltas = [];
  const controller = new AbortController();
  const outcome = { deltas };
  const options = { signal: controller.signal, timeout: op.timeout_ms ?? 120000 };
  if (op.progress) {
    options.onprogress = (progress) => {
      deltas.push(progress.message ?? '');
      if (op.abort_after_deltas !== undefined && deltas.length === op.abort_after_deltas) {
        outcome.abortedAt = Date.now() / 1000;
        controller.abort('the host gave up');
      }
    };
  }
  try {
    const result = await client.callTool({ name: op.name, arguments: args }, undefined, options);
    outcome.isError = result.isError === true;
    outcome.structuredContent = result.structuredContent ?? null;
    outcome.payload = payloadOf(result);
    outcome.firstText = (result.content ?? []).find((block) => block.type === 'text')?.text ?? null;
  } catch (error) {
    outcome.thrown = { code: error?.code ?? null, message: String(error?.message ?? error) };
  }
  return outcome;
}

const results = [];
for (const op of plan.ops) {
  if (op.op === 'sleep') {
    await new Promise((resolve) => setTimeout(resolve, op.ms));
    results.push([]);
    continue;
  }
  if (op.op === 'ping') {
    const rtts = [];
    for (let i = 0; i < (op.repeat ?? 1); i++) {
      const started = performance.now();
      await client.ping();
      rtts.push((performance.now() - started) / 1000);
    }
    results.push(rtts);
    continue;
  }
  if (op.op === 'list_tools') {
    const { tools } = await client.listTools();
    results.push(tools.map((tool) => ({ name: tool.name, inputSchema: tool.inputSchema,
                                        outputSchema: tool.outputSchema ?? null })));
    continue;
  }
  const args = { ...(op.arguments ?? {}) };
  for (const [name, [index, key]] of Object.entries(op.bind ?? {})) {
    args[name] = results[index][0].payload?.[key];
  }
  const outcomes = [];
  for (let i = 0; i < (op.repeat ?? 1); i++) outcomes.push(await callOnce(op, args));
  results.push(outcomes);
}

const server = client.getServerVersion() ?? {};
await client.close();
process.stdout.write(JSON.stringify({ server: { name: server.name, version: server.version }, ops: results,
                                      errors }) + '\n');
