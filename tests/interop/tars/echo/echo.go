// Package echo is the client proxy and server dispatcher of Echo.tars: the
// code tars2go generates for an interface (compare TarsGo's own
// tars/protocol/res/adminf/AdminF.tars.go), written out by hand for the
// three functions. tars2go for TarsGo v1.4.x is a module of its own
// (github.com/TarsCloud/TarsGo/tars/tools/tars2go), which the Go module
// proxy this project uses does not serve; see README.md.
//
// Arguments go in sBuffer at tags 1, 2, … and the return value at tag 0,
// in the TARS encoding (iVersion 1); the server also takes TUP calls
// (iVersion 3), whose arguments sit in a UniAttribute by name ("value",
// "ms") and whose answer goes back under "" and "tars_ret".
package echo

import (
	"context"
	"fmt"

	"github.com/TarsCloud/TarsGo/tars"
	"github.com/TarsCloud/TarsGo/tars/model"
	"github.com/TarsCloud/TarsGo/tars/protocol/codec"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/basef"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/requestf"
	"github.com/TarsCloud/TarsGo/tars/protocol/tup"
	"github.com/TarsCloud/TarsGo/tars/util/tools"
)

// Servant is what a server implements.
type Servant interface {
	Echo(ctx context.Context, value string) (string, error)
	SlowEcho(ctx context.Context, value string, ms int32) (string, error)
	Note(ctx context.Context, value string) error
}

// Proxy is the client side (tars2go's `Echo` struct).
type Proxy struct {
	servant model.Servant
}

// SetServant is called by Communicator.StringToProxy.
func (p *Proxy) SetServant(s model.Servant) { p.servant = s }

// TarsSetTimeout sets the call timeout in ms.
func (p *Proxy) TarsSetTimeout(ms int) { p.servant.TarsSetTimeout(ms) }

func (p *Proxy) call(ctx context.Context, packetType byte, fn string, reqContext map[string]string, args func(*codec.Buffer) error) (*requestf.ResponsePacket, error) {
	buf := codec.NewBuffer()
	if err := args(buf); err != nil {
		return nil, err
	}
	resp := new(requestf.ResponsePacket)
	err := p.servant.TarsInvoke(ctx, packetType, fn, buf.ToBytes(), nil, reqContext, resp)
	return resp, err
}

func stringResult(resp *requestf.ResponsePacket) (string, error) {
	var ret string
	err := codec.NewReader(tools.Int8ToByte(resp.SBuffer)).ReadString(&ret, 0, true)
	return ret, err
}

// Echo calls echo(value); reqContext goes in RequestPacket.context (what
// tars2go's `opts ...map[string]string` carries).
func (p *Proxy) Echo(ctx context.Context, value string, reqContext map[string]string) (string, error) {
	resp, err := p.call(ctx, byte(basef.TARSNORMAL), "echo", reqContext, func(b *codec.Buffer) error {
		return b.WriteString(value, 1)
	})
	if err != nil {
		return "", err
	}
	return stringResult(resp)
}

// SlowEcho calls slowEcho(value, ms).
func (p *Proxy) SlowEcho(ctx context.Context, value string, ms int32, reqContext map[string]string) (string, error) {
	resp, err := p.call(ctx, byte(basef.TARSNORMAL), "slowEcho", reqContext, func(b *codec.Buffer) error {
		if err := b.WriteString(value, 1); err != nil {
			return err
		}
		return b.WriteInt32(ms, 2)
	})
	if err != nil {
		return "", err
	}
	return stringResult(resp)
}

// NoteOneWay calls note(value) oneway (tars2go's `NoteOneWayWithContext`).
func (p *Proxy) NoteOneWay(ctx context.Context, value string, reqContext map[string]string) error {
	_, err := p.call(ctx, byte(basef.TARSONEWAY), "note", reqContext, func(b *codec.Buffer) error {
		return b.WriteString(value, 1)
	})
	return err
}

// Dispatcher is the server side (tars2go's `Dispatch`), for the TARS
// (iVersion 1) and TUP (iVersion 3) encodings of the arguments.
type Dispatcher struct{}

// args reads the arguments by tag (TARS) or by name from a UniAttribute
// (TUP), as tars2go's dispatch does.
type args struct {
	tars *codec.Reader
	tup  *tup.UniAttribute
}

func (a *args) reader(tag byte, name string) (*codec.Reader, byte, error) {
	if a.tup == nil {
		return a.tars, tag, nil
	}
	var buf []byte
	if err := a.tup.GetBuffer(name, &buf); err != nil {
		return nil, 0, err
	}
	return codec.NewReader(buf), 0, nil
}

func (a *args) str(tag byte, name string) (string, error) {
	var v string
	r, tag, err := a.reader(tag, name)
	if err == nil {
		err = r.ReadString(&v, tag, true)
	}
	return v, err
}

func (a *args) int32(tag byte, name string) (int32, error) {
	var v int32
	r, tag, err := a.reader(tag, name)
	if err == nil {
		err = r.ReadInt32(&v, tag, true)
	}
	return v, err
}

// Dispatch decodes a request's arguments, calls the servant, encodes its
// answer.
func (Dispatcher) Dispatch(ctx context.Context, val interface{}, req *requestf.RequestPacket, resp *requestf.ResponsePacket, withContext bool) error {
	in := &args{tars: codec.NewReader(tools.Int8ToByte(req.SBuffer))}
	switch req.IVersion {
	case basef.TARSVERSION:
	case basef.TUPVERSION:
		in.tup = tup.NewUniAttribute()
		if err := in.tup.Decode(in.tars); err != nil {
			return err
		}
	default:
		return fmt.Errorf("iVersion %d is not served here", req.IVersion)
	}
	imp := val.(Servant)
	out := codec.NewBuffer()
	value, err := in.str(1, "value")
	if err != nil {
		return err
	}
	switch req.SFuncName {
	case "echo":
		ret, err := imp.Echo(ctx, value)
		if err != nil {
			return err
		}
		if err := out.WriteString(ret, 0); err != nil {
			return err
		}
	case "slowEcho":
		ms, err := in.int32(2, "ms")
		if err != nil {
			return err
		}
		ret, err := imp.SlowEcho(ctx, value, ms)
		if err != nil {
			return err
		}
		if err := out.WriteString(ret, 0); err != nil {
			return err
		}
	case "note":
		if err := imp.Note(ctx, value); err != nil {
			return err
		}
	default:
		return fmt.Errorf("func mismatch")
	}
	result := out.ToBytes()
	if in.tup != nil {
		// TUP: the return value under "" and "tars_ret".
		rsp := tup.NewUniAttribute()
		rsp.PutBuffer("", result)
		rsp.PutBuffer("tars_ret", result)
		encoded := codec.NewBuffer()
		if err := rsp.Encode(encoded); err != nil {
			return err
		}
		result = encoded.ToBytes()
	}
	*resp = requestf.ResponsePacket{
		IVersion:   req.IVersion,
		IRequestId: req.IRequestId,
		SBuffer:    tools.ByteToInt8(result),
	}
	return nil
}

var _ tars.ProxyPrx = (*Proxy)(nil)
