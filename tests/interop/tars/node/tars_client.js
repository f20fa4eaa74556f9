'use strict';
// A Tars client on @tars/rpc 2.0.15 / @tars/stream 2.0.3 (TarsNode, an
// encoder independent of TarsGo's) for baton's interop test
// (tests/tests/interop_tars.rs), with the same commands and output as the
// TarsGo client (../client/main.go):
//
//   node tars_client.js '{"address":"127.0.0.1:PORT","timeoutMs":15000,"version":1}'
//
// With "version": 3 it calls echo and slowEcho in TUP (`tup_invoke`, the
// arguments by name in a UniAttribute); note is TARS-encoded either way.
//
//   {"op":"invoke","tag":T,"func":"echo"|"slowEcho"|"note","args":[[v],[v,ms],...],"context":{k:v}}
//       all calls start at once; {"tag":T,"results":[{"ok":true,"value":V}|
//       {"ok":false,"error":E,"code":C},...]} when the last settles; `note`
//       is oneway; `context` goes in every call's RequestPacket.context
//   {"op":"sockets","tag":T}
//       {"tag":T,"sockets":[{"local":P},...]}: the open TCP connections
//       this process made (every `net.connect`, recorded)
//
// A line {"event":"ready"} comes first; the client exits when stdin closes.

const net = require('net');

// Record every connection the library opens: its transceiver makes a
// `new net.Socket()` and calls `connect` on it (once per socket; a
// reconnect is a new socket).
const opened = [];
const socketConnect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  if (!this.__batonRecorded) {
    this.__batonRecorded = true;
    const entry = { local: null, closed: false };
    opened.push(entry);
    this.once('connect', () => { entry.local = this.localPort; });
    this.once('close', () => { entry.closed = true; });
  }
  return socketConnect.apply(this, args);
};

const Tars = require('@tars/rpc').client;
const { Baton } = require('./EchoProxy.js');

const opts = JSON.parse(process.argv[2]);
const emit = obj => process.stdout.write(JSON.stringify(obj) + '\n');
const [host, port] = opts.address.split(':');
const prx = Tars.stringToProxy(Baton.EchoProxy, `Baton.EchoServer.EchoObj@tcp -h ${host} -p ${port} -t 600000`);
prx.setTimeout(opts.timeoutMs || 15000);
const tup = opts.version === 3;
if (tup) {
  prx._worker.version = 3;
}

function call(func, args, context) {
  const property = context ? { context } : undefined;
  const p = func === 'echo' ? (tup ? prx.tupEcho(args[0], property) : prx.echo(args[0], property))
    : func === 'slowEcho' ? (tup ? prx.tupSlowEcho(args[0], args[1] || 0, property) : prx.slowEcho(args[0], args[1] || 0, property))
    : func === 'note' ? prx.note(args[0], property)
    : Promise.reject({ response: { error: { code: 0, message: 'unknown func ' + func } } });
  return p.then(
    r => ({ ok: true, value: r.response.return }),
    e => {
      const error = (e && e.response && e.response.error) || { message: String(e) };
      return { ok: false, error: String(error.message), code: error.code };
    });
}

async function handle(cmd) {
  switch (cmd.op) {
    case 'invoke': {
      const results = await Promise.all(cmd.args.map(a => call(cmd.func, a, cmd.context)));
      return emit({ tag: cmd.tag, results });
    }
    case 'sockets':
      return emit({ tag: cmd.tag, sockets: opened.filter(s => !s.closed).map(s => ({ local: s.local })) });
    default:
      return emit({ tag: cmd.tag, fatal: 'unknown op ' + cmd.op });
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
      let cmd;
      try { cmd = JSON.parse(line); } catch (e) { emit({ fatal: 'bad command: ' + e.message }); continue; }
      handle(cmd).catch(e => emit({ tag: cmd.tag, fatal: String(e && e.stack || e) }));
    }
  }
});
process.stdin.on('end', () => process.exit(0));
emit({ event: 'ready' });
