'use strict';
// The client proxy of ../Echo.tars for @tars/rpc: what TarsNode's code
// generator (tars2node, a C++ program that is not on npm) writes for an
// interface — compare @tars/rpc's own examples/rpc-tars/*/NodeTarsProxy.js —
// written out by hand for the three functions. Arguments go in sBuffer at
// tags 1, 2, …, the return value comes back at tag 0 (TARS encoding,
// iVersion 1).

const TarsStream = require('@tars/stream');
// `require('@tars/rpc').error`, read when needed: @tars/rpc is still
// loading when this file is (a circular require).
const decodeError = () => require('@tars/rpc').error.CLIENT.DECODE_ERROR;

const Baton = {};
module.exports.Baton = Baton;

Baton.EchoProxy = function () {
  this._name = undefined;
  this._worker = undefined;
};

Baton.EchoProxy.prototype.setTimeout = function (iTimeout) {
  this._worker.timeout = iTimeout;
};

function decodeString(data) {
  try {
    const is = new TarsStream.TarsInputStream(data.response.sBuffer);
    return { request: data.request, response: { costtime: data.request.costtime, return: is.readString(0, true, TarsStream.String) } };
  } catch (e) {
    throw { request: data.request, response: { costtime: data.request.costtime, error: { code: decodeError(), message: e.message } } };
  }
}

function fail(data) {
  throw { request: data.request, response: { costtime: data.request.costtime, error: data.error } };
}

Baton.EchoProxy.prototype.echo = function (value, property) {
  const os = new TarsStream.TarsOutputStream();
  os.writeString(1, value);
  return this._worker.tars_invoke('echo', os.getBinBuffer(), property).then(decodeString, fail);
};

Baton.EchoProxy.prototype.slowEcho = function (value, ms, property) {
  const os = new TarsStream.TarsOutputStream();
  os.writeString(1, value);
  os.writeInt32(2, ms);
  return this._worker.tars_invoke('slowEcho', os.getBinBuffer(), property).then(decodeString, fail);
};

// Oneway: @tars/rpc sends cPacketType 1 for `packetType: 1`, and once the
// request is written it settles the call by rejecting it with this message
// (AdapterProxy._doOneWayEnd): that is the success of a oneway call.
const ONEWAY_SENT = 'one way call do not need response';

Baton.EchoProxy.prototype.note = function (value, property) {
  const os = new TarsStream.TarsOutputStream();
  os.writeString(1, value);
  return this._worker.tars_invoke('note', os.getBinBuffer(), Object.assign({ packetType: 1 }, property))
    .then(data => ({ request: data.request, response: { return: '' } }), data => {
      if (data && data.error && data.error.message === ONEWAY_SENT) {
        return { request: data.request, response: { return: '' } };
      }
      return fail(data);
    });
};

// The same calls in TUP (iVersion 3, `TUP_SIMPLE`), with the proxy's
// version set to 3: the arguments by name in a UniAttribute, the answer
// read from the response's UniAttribute under "" (TarsNode's TUP proxies,
// `tup_invoke`).
function decodeTup(data) {
  try {
    return { request: data.request, response: { costtime: data.request.costtime, return: data.response.tup.readString('') } };
  } catch (e) {
    throw { request: data.request, response: { costtime: data.request.costtime, error: { code: decodeError(), message: e.message } } };
  }
}

Baton.EchoProxy.prototype.tupEcho = function (value, property) {
  const attr = new TarsStream.UniAttribute();
  attr.writeString('value', value);
  return this._worker.tup_invoke('echo', attr, property).then(decodeTup, fail);
};

Baton.EchoProxy.prototype.tupSlowEcho = function (value, ms, property) {
  const attr = new TarsStream.UniAttribute();
  attr.writeString('value', value);
  attr.writeInt32('ms', ms);
  return this._worker.tup_invoke('slowEcho', attr, property).then(decodeTup, fail);
};
