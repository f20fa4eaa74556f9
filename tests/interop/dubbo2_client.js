'use strict';
// A dubbo2.js client (Apache's dubbo-js, 2.x line) for baton's interop
// tests, connected straight to one address (`DirectlyDubbo`, no registry)
// and driven over stdin/stdout like rpc_client.js:
//
//   node dubbo2_client.js '{"address":"127.0.0.1:PORT"}'
//
//   {"op":"invoke","tag":T,"service":S,"method":M,"args":[[...],...],"timeoutMs":N}
//       -> {"tag":T,"results":[{"ok":true,"value":V}|{"ok":false,"error":E},...]}
//   {"op":"sockets","tag":T}
//       -> {"tag":T,"sockets":[{"local":P,"closed":bool},...]}
//
// Arguments are typed for Java with js-to-java: strings as java.lang.String,
// numbers as int (the servers' methods are echo(String) and
// slowEcho(String, int)). Services are version "1.0", as sofa-rpc-node
// servers publish them by default.

const net = require('net');

// dubbo2.js connects with `new net.Socket().connect(...)`: wrap `connect`
// to record every connection it opens (and so any reconnect).
const sockets = [];
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function(...args) {
  const entry = { local: null, closed: false };
  sockets.push(entry);
  this.once('connect', () => { entry.local = this.localPort; });
  this.once('close', () => { entry.closed = true; });
  return connect.apply(this, args);
};

const java = require('js-to-java');
const { DirectlyDubbo } = require('dubbo2.js');

const opts = JSON.parse(process.argv[2]);
const emit = obj => process.stdout.write(JSON.stringify(obj) + '\n');

let dubbo = null;
const services = new Map();

function service(name, timeoutMs) {
  if (!dubbo) {
    dubbo = DirectlyDubbo.from({
      dubboAddress: opts.address,
      dubboVersion: '2.0.2',
      // Seconds.
      dubboInvokeTimeout: Math.ceil(timeoutMs / 1000),
    });
  }
  if (!services.has(name)) {
    const toJava = args => args.map(a => (typeof a === 'number' ? java.int(a) : java.String(String(a))));
    services.set(name, dubbo.proxyService({
      dubboInterface: name,
      version: '1.0',
      methods: {
        echo(...args) { return toJava(args); },
        slowEcho(...args) { return toJava(args); },
      },
    }));
  }
  return services.get(name);
}

async function invoke(cmd) {
  const s = service(cmd.service, cmd.timeoutMs || 10000);
  // dubbo2.js answers { res, err } instead of rejecting.
  const calls = cmd.args.map(args => s[cmd.method](...args).then(({ res, err }) =>
    (err ? { ok: false, error: String(err && err.message) } : { ok: true, value: res })));
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
