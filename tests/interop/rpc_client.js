'use strict';
// A sofa-rpc-node RpcClient for baton's interop tests, speaking Bolt
// (sofa-bolt-node, the default) or Dubbo (dubbo-remoting), driven over
// stdin/stdout with one JSON object per line.
//
//   node rpc_client.js '{"protocol":"bolt","address":"127.0.0.1:PORT"}'
//
// Commands (stdin):
//
//   {"op":"invoke","tag":T,"service":S,"method":M,"args":[[...],...],"timeoutMs":N}
//       every argument list is one call; all calls start at once; when the
//       last settles: {"tag":T,"results":[{"ok":true,"value":V}|{"ok":false,"error":E},...]}
//   {"op":"sockets","tag":T}
//       {"tag":T,"sockets":[{"local":P,"closed":bool},...]}: every TCP
//       connection this process opened, to see whether the client ever
//       reconnected
//
// A line {"event":"ready"} is printed first.

const net = require('net');

// Record every connection the library opens: it calls `net.connect` at
// connect time, so wrapping it here sees them all.
const sockets = [];
const connect = net.connect;
net.connect = function(...args) {
  const socket = connect.apply(this, args);
  const entry = { local: null, closed: false };
  sockets.push(entry);
  socket.once('connect', () => { entry.local = socket.localPort; });
  socket.once('close', () => { entry.closed = true; });
  return socket;
};

const { RpcClient } = require('sofa-rpc-node').client;

const opts = JSON.parse(process.argv[2]);
const emit = obj => process.stdout.write(JSON.stringify(obj) + '\n');
const logger = {
  debug() {},
  info() {},
  warn(...args) { console.error('[client warn]', ...args); },
  error(...args) { console.error('[client error]', ...args); },
};

const protocol = opts.protocol === 'dubbo' ? require('dubbo-remoting') : require('sofa-bolt-node');
const client = new RpcClient({ logger, protocol });
const consumers = new Map();

async function consumer(service) {
  if (!consumers.has(service)) {
    const c = client.createConsumer({ interfaceName: service, serverHost: opts.address });
    consumers.set(service, c);
    await c.ready();
  }
  return consumers.get(service);
}

async function invoke(cmd) {
  const c = await consumer(cmd.service);
  const calls = cmd.args.map(args =>
    c.invoke(cmd.method, args, { responseTimeout: cmd.timeoutMs || 10000 })
      .then(value => ({ ok: true, value }), err => ({ ok: false, error: String(err && err.message) })));
  emit({ tag: cmd.tag, results: await Promise.all(calls) });
}

async function handle(cmd) {
  switch (cmd.op) {
    case 'invoke':
      return invoke(cmd);
    case 'sockets':
      return emit({ tag: cmd.tag, sockets });
    default:
      throw new Error('unknown op ' + cmd.op);
  }
}

let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', chunk => {
  pending += chunk;
  let nl;
  while ((nl = pending.indexOf('\n')) >= 0) {
    const line = pending.slice(0, nl);
    pending = pending.slice(nl + 1);
    if (line.trim()) {
      const cmd = JSON.parse(line);
      handle(cmd).catch(err => emit({ tag: cmd.tag, fatal: String(err && err.stack) }));
    }
  }
});
process.stdin.on('end', () => process.exit(0));
emit({ event: 'ready' });
