// xds-control-plane: the test control plane of baton's xDS client
// (xds/tests/). A real, independently written xDS server: go-control-plane's
// snapshot cache and ADS server (v0.14.0, envoy module v1.40.0, pinned by
// go.sum), serving ADS state-of-the-world and delta on one gRPC port.
//
// Protocol with the test (JSON lines):
//
//   - stdout, first line: {"event":"listening","port":N}; then one line per
//     request the server receives that acknowledges or rejects a response:
//     {"event":"ack"|"nack","node":ID,"type_url":T,"version":V,"nonce":N,
//     "error":MSG,"delta":BOOL}, and {"event":"stream","delta":BOOL} for
//     each new stream; a request that answers nothing (a stream's first
//     per type, or a new subscription) is {"event":"request","node":ID,
//     "type_url":T,"names":[…],"delta":BOOL} with "version" (state of the
//     world) or "initial_versions" (delta, a map name → version);
//     {"event":"ok","op":OP} answers each command.
//   - stdin: one command per line. {"op":"snapshot","node":ID,"version":V,
//     "clusters":[…],"endpoints":[…],"listeners":[…],"routes":[…],
//     "secrets":[…]} sets the node's snapshot (the shapes are the Go structs
//     below, turned into Envoy v3 protos here). A listener with "api":true
//     is an API listener, as gRPC's xDS clients want
//     (tests/interop/xds/grpc_xds_client.py).
//
// Flags: -port P binds 127.0.0.1:P (default 0: any free port), so that a
// test can kill the server and start it again on the same port;
// -tls-cert and -tls-key serve TLS, -tls-client-ca also requires client
// certificates that CA signed (mTLS).
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type addr struct {
	Address string `json:"address"`
	Port    uint32 `json:"port"`
	Weight  uint32 `json:"weight"`
	Health  string `json:"health"`
}

type clusterJSON struct {
	Name             string `json:"name"`
	Type             string `json:"type"` // EDS (default) or STATIC
	LbPolicy         string `json:"lb_policy"`
	ConnectTimeoutMs int64  `json:"connect_timeout_ms"`
	MaxConnections   uint32 `json:"max_connections"`
	MaxRequests      uint32 `json:"max_requests"`
	Endpoints        []addr `json:"endpoints"` // STATIC
	// TLS to the endpoints, its certificate and trusted CAs from SDS.
	SdsCertificate string `json:"sds_certificate"`
	SdsValidation  string `json:"sds_validation"`
}

type endpointsJSON struct {
	Cluster   string `json:"cluster"`
	Endpoints []addr `json:"endpoints"`
}

type listenerJSON struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Port    uint32 `json:"port"`
	// One of: a tcp_proxy to Cluster; an http_connection_manager with
	// RDS RouteConfig, or with inline Routes.
	Cluster     string     `json:"cluster"`
	RouteConfig string     `json:"route_config"`
	Inline      *routeJSON `json:"inline_routes"`
	Filter      string     `json:"filter"` // any other filter name (typed config left empty)
	// An API listener (gRPC's xDS clients: the listener named by the
	// target, its http_connection_manager in api_listener, no address).
	API bool `json:"api"`
}

type routeEntry struct {
	Prefix    string            `json:"prefix"`
	Path      string            `json:"path"`
	Cluster   string            `json:"cluster"`
	Weighted  map[string]uint32 `json:"weighted"`
	TimeoutMs int64             `json:"timeout_ms"`
	Retries   uint32            `json:"retries"`
	Direct    *struct {
		Status uint32 `json:"status"`
		Body   string `json:"body"`
	} `json:"direct"`
	Redirect *struct {
		Host string `json:"host"`
		Path string `json:"path"`
	} `json:"redirect"`
	AddHeaders map[string]string `json:"add_headers"`
}

type vhostJSON struct {
	Name    string       `json:"name"`
	Domains []string     `json:"domains"`
	Routes  []routeEntry `json:"routes"`
}

type routeJSON struct {
	Name         string      `json:"name"`
	VirtualHosts []vhostJSON `json:"virtual_hosts"`
}

type secretJSON struct {
	Name    string `json:"name"`
	CertPem string `json:"cert_pem"`
	KeyPem  string `json:"key_pem"`
	CaPem   string `json:"ca_pem"`
}

type command struct {
	Op        string          `json:"op"`
	Node      string          `json:"node"`
	Version   string          `json:"version"`
	Clusters  []clusterJSON   `json:"clusters"`
	Endpoints []endpointsJSON `json:"endpoints"`
	Listeners []listenerJSON  `json:"listeners"`
	Routes    []routeJSON     `json:"routes"`
	Secrets   []secretJSON    `json:"secrets"`
}

var outMu sync.Mutex

func emit(v map[string]any) {
	b, _ := json.Marshal(v)
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.Write(append(b, '\n'))
}

func sockAddr(a string, port uint32) *core.Address {
	if a == "" {
		a = "127.0.0.1"
	}
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address: a, PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
	}}}
}

func lbEndpoints(as []addr) []*endpoint.LbEndpoint {
	var out []*endpoint.LbEndpoint
	for _, a := range as {
		e := &endpoint.LbEndpoint{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: sockAddr(a.Address, a.Port)}}}
		if a.Weight != 0 {
			e.LoadBalancingWeight = wrapperspb.UInt32(a.Weight)
		}
		if a.Health != "" {
			e.HealthStatus = core.HealthStatus(core.HealthStatus_value[a.Health])
		}
		out = append(out, e)
	}
	return out
}

func makeCluster(c clusterJSON) *cluster.Cluster {
	out := &cluster.Cluster{Name: c.Name, ConnectTimeout: durationpb.New(time.Second)}
	if c.ConnectTimeoutMs > 0 {
		out.ConnectTimeout = durationpb.New(time.Duration(c.ConnectTimeoutMs) * time.Millisecond)
	}
	if c.LbPolicy != "" {
		out.LbPolicy = cluster.Cluster_LbPolicy(cluster.Cluster_LbPolicy_value[c.LbPolicy])
	}
	if c.Type == "STATIC" {
		out.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_STATIC}
		out.LoadAssignment = &endpoint.ClusterLoadAssignment{ClusterName: c.Name,
			Endpoints: []*endpoint.LocalityLbEndpoints{{LbEndpoints: lbEndpoints(c.Endpoints)}}}
	} else {
		out.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_EDS}
		out.EdsClusterConfig = &cluster.Cluster_EdsClusterConfig{EdsConfig: &core.ConfigSource{
			ResourceApiVersion:    core.ApiVersion_V3,
			ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
		}}
	}
	if c.MaxConnections != 0 || c.MaxRequests != 0 {
		t := &cluster.CircuitBreakers_Thresholds{}
		if c.MaxConnections != 0 {
			t.MaxConnections = wrapperspb.UInt32(c.MaxConnections)
		}
		if c.MaxRequests != 0 {
			t.MaxRequests = wrapperspb.UInt32(c.MaxRequests)
		}
		out.CircuitBreakers = &cluster.CircuitBreakers{Thresholds: []*cluster.CircuitBreakers_Thresholds{t}}
	}
	if c.SdsCertificate != "" || c.SdsValidation != "" {
		ads := &core.ConfigSource{ResourceApiVersion: core.ApiVersion_V3,
			ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}
		common := &tlsv3.CommonTlsContext{}
		if c.SdsCertificate != "" {
			common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{{Name: c.SdsCertificate, SdsConfig: ads}}
		}
		if c.SdsValidation != "" {
			common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: c.SdsValidation, SdsConfig: ads}}
		}
		out.TransportSocket = &core.TransportSocket{Name: "envoy.transport_sockets.tls",
			ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: must(anypb.New(&tlsv3.UpstreamTlsContext{CommonTlsContext: common}))}}
	}
	return out
}

func makeRoutes(r routeJSON) *route.RouteConfiguration {
	out := &route.RouteConfiguration{Name: r.Name}
	for _, vh := range r.VirtualHosts {
		v := &route.VirtualHost{Name: vh.Name, Domains: vh.Domains}
		if len(v.Domains) == 0 {
			v.Domains = []string{"*"}
		}
		for _, e := range vh.Routes {
			rt := &route.Route{Match: &route.RouteMatch{}}
			if e.Path != "" {
				rt.Match.PathSpecifier = &route.RouteMatch_Path{Path: e.Path}
			} else {
				rt.Match.PathSpecifier = &route.RouteMatch_Prefix{Prefix: e.Prefix}
			}
			for k, val := range e.AddHeaders {
				rt.RequestHeadersToAdd = append(rt.RequestHeadersToAdd, &core.HeaderValueOption{Header: &core.HeaderValue{Key: k, Value: val}})
			}
			switch {
			case e.Direct != nil:
				rt.Action = &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: e.Direct.Status,
					Body: &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: e.Direct.Body}}}}
			case e.Redirect != nil:
				rd := &route.RedirectAction{HostRedirect: e.Redirect.Host}
				if e.Redirect.Path != "" {
					rd.PathRewriteSpecifier = &route.RedirectAction_PathRedirect{PathRedirect: e.Redirect.Path}
				}
				rt.Action = &route.Route_Redirect{Redirect: rd}
			default:
				ra := &route.RouteAction{}
				if len(e.Weighted) > 0 {
					wc := &route.WeightedCluster{}
					for name, w := range e.Weighted {
						wc.Clusters = append(wc.Clusters, &route.WeightedCluster_ClusterWeight{Name: name, Weight: wrapperspb.UInt32(w)})
					}
					ra.ClusterSpecifier = &route.RouteAction_WeightedClusters{WeightedClusters: wc}
				} else {
					ra.ClusterSpecifier = &route.RouteAction_Cluster{Cluster: e.Cluster}
				}
				if e.TimeoutMs > 0 {
					ra.Timeout = durationpb.New(time.Duration(e.TimeoutMs) * time.Millisecond)
				}
				if e.Retries > 0 {
					ra.RetryPolicy = &route.RetryPolicy{RetryOn: "5xx,connect-failure", NumRetries: wrapperspb.UInt32(e.Retries)}
				}
				rt.Action = &route.Route_Route{Route: ra}
			}
			v.Routes = append(v.Routes, rt)
		}
		out.VirtualHosts = append(out.VirtualHosts, v)
	}
	return out
}

func must(m *anypb.Any, err error) *anypb.Any {
	if err != nil {
		panic(err)
	}
	return m
}

func makeListener(l listenerJSON) *listener.Listener {
	var f *listener.Filter
	switch {
	case l.Filter != "":
		f = &listener.Filter{Name: l.Filter}
	case l.Cluster != "":
		f = &listener.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listener.Filter_TypedConfig{TypedConfig: must(anypb.New(&tcp.TcpProxy{
			StatPrefix: l.Name, ClusterSpecifier: &tcp.TcpProxy_Cluster{Cluster: l.Cluster}}))}}
	default:
		m := &hcm.HttpConnectionManager{StatPrefix: l.Name, HttpFilters: []*hcm.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: must(anypb.New(&routerv3.Router{}))},
		}}}
		if l.Inline != nil {
			m.RouteSpecifier = &hcm.HttpConnectionManager_RouteConfig{RouteConfig: makeRoutes(*l.Inline)}
		} else {
			m.RouteSpecifier = &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{RouteConfigName: l.RouteConfig, ConfigSource: &core.ConfigSource{
				ResourceApiVersion:    core.ApiVersion_V3,
				ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
			}}}
		}
		if l.API {
			return &listener.Listener{Name: l.Name, ApiListener: &listener.ApiListener{ApiListener: must(anypb.New(m))}}
		}
		f = &listener.Filter{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listener.Filter_TypedConfig{TypedConfig: must(anypb.New(m))}}
	}
	return &listener.Listener{Name: l.Name, Address: sockAddr(l.Address, l.Port),
		FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{f}}}}
}

func makeSecret(s secretJSON) *tlsv3.Secret {
	inline := func(s string) *core.DataSource {
		return &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: s}}
	}
	if s.CaPem != "" {
		return &tlsv3.Secret{Name: s.Name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: inline(s.CaPem)}}}
	}
	return &tlsv3.Secret{Name: s.Name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: inline(s.CertPem), PrivateKey: inline(s.KeyPem)}}}
}

func snapshot(c command) (*cache.Snapshot, error) {
	res := map[resource.Type][]types.Resource{}
	for _, x := range c.Clusters {
		res[resource.ClusterType] = append(res[resource.ClusterType], makeCluster(x))
	}
	for _, x := range c.Endpoints {
		// One locality, with a weight: gRPC's xDS client ignores a
		// locality without one.
		res[resource.EndpointType] = append(res[resource.EndpointType], &endpoint.ClusterLoadAssignment{ClusterName: x.Cluster,
			Endpoints: []*endpoint.LocalityLbEndpoints{{Locality: &core.Locality{Zone: "a"},
				LoadBalancingWeight: wrapperspb.UInt32(1), LbEndpoints: lbEndpoints(x.Endpoints)}}})
	}
	for _, x := range c.Listeners {
		res[resource.ListenerType] = append(res[resource.ListenerType], makeListener(x))
	}
	for _, x := range c.Routes {
		res[resource.RouteType] = append(res[resource.RouteType], makeRoutes(x))
	}
	for _, x := range c.Secrets {
		res[resource.SecretType] = append(res[resource.SecretType], makeSecret(x))
	}
	return cache.NewSnapshot(c.Version, res)
}

// callbacks reports ACKs and NACKs (a request that answers a response: it
// carries the response's nonce) and new streams.
type callbacks struct{}

func node(n *core.Node) string {
	if n == nil {
		return ""
	}
	return n.Id
}

func (callbacks) OnStreamOpen(context.Context, int64, string) error {
	emit(map[string]any{"event": "stream", "delta": false})
	return nil
}
func (callbacks) OnStreamClosed(int64, *core.Node) {}
func (callbacks) OnStreamRequest(_ int64, r *discovery.DiscoveryRequest) error {
	if r.ResponseNonce == "" {
		emit(map[string]any{"event": "request", "node": node(r.Node), "type_url": r.TypeUrl,
			"version": r.VersionInfo, "names": r.ResourceNames, "delta": false})
	} else {
		report(node(r.Node), r.TypeUrl, r.VersionInfo, r.ResponseNonce, r.ErrorDetail.GetMessage(), r.ErrorDetail != nil, false)
	}
	return nil
}
func (callbacks) OnStreamResponse(context.Context, int64, *discovery.DiscoveryRequest, *discovery.DiscoveryResponse) {
}
func (callbacks) OnFetchRequest(context.Context, *discovery.DiscoveryRequest) error         { return nil }
func (callbacks) OnFetchResponse(*discovery.DiscoveryRequest, *discovery.DiscoveryResponse) {}
func (callbacks) OnDeltaStreamOpen(context.Context, int64, string) error {
	emit(map[string]any{"event": "stream", "delta": true})
	return nil
}
func (callbacks) OnDeltaStreamClosed(int64, *core.Node) {}
func (callbacks) OnStreamDeltaRequest(_ int64, r *discovery.DeltaDiscoveryRequest) error {
	if r.ResponseNonce == "" {
		emit(map[string]any{"event": "request", "node": node(r.Node), "type_url": r.TypeUrl,
			"initial_versions": r.InitialResourceVersions, "names": r.ResourceNamesSubscribe, "delta": true})
	} else {
		report(node(r.Node), r.TypeUrl, "", r.ResponseNonce, r.ErrorDetail.GetMessage(), r.ErrorDetail != nil, true)
	}
	return nil
}
func (callbacks) OnStreamDeltaResponse(int64, *discovery.DeltaDiscoveryRequest, *discovery.DeltaDiscoveryResponse) {
}

// The version each nonce answered, for delta ACKs (whose requests carry no
// version): the test waits for the version it set.
var (
	nonceMu       sync.Mutex
	deltaVersions = map[string]string{}
)

func report(nodeID, typeURL, version, nonce, msg string, nack, delta bool) {
	if delta {
		nonceMu.Lock()
		version = deltaVersions[nonce]
		nonceMu.Unlock()
	}
	ev := "ack"
	if nack {
		ev = "nack"
	}
	emit(map[string]any{"event": ev, "node": nodeID, "type_url": typeURL, "version": version, "nonce": nonce, "error": msg, "delta": delta})
}

type deltaRecorder struct{ callbacks }

func (deltaRecorder) OnStreamDeltaResponse(_ int64, _ *discovery.DeltaDiscoveryRequest, r *discovery.DeltaDiscoveryResponse) {
	nonceMu.Lock()
	deltaVersions[r.Nonce] = r.SystemVersionInfo
	nonceMu.Unlock()
}

func main() {
	port := flag.Int("port", 0, "port to bind on 127.0.0.1 (0: any)")
	certFile := flag.String("tls-cert", "", "serve TLS with this certificate (PEM)")
	keyFile := flag.String("tls-key", "", "and this key (PEM)")
	clientCA := flag.String("tls-client-ca", "", "require client certificates signed by this CA (mTLS)")
	flag.Parse()
	var opts []grpc.ServerOption
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		config := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}}
		if *clientCA != "" {
			pem, err := os.ReadFile(*clientCA)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			config.ClientCAs = pool
			config.ClientAuth = tls.RequireAndVerifyClientCert
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(config)))
	}
	ctx := context.Background()
	snapshots := cache.NewSnapshotCache(true, cache.IDHash{}, nil)
	srv := server.NewServer(ctx, snapshots, deltaRecorder{})
	g := grpc.NewServer(opts...)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, srv)
	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	emit(map[string]any{"event": "listening", "port": lis.Addr().(*net.TCPAddr).Port})
	go func() {
		in := bufio.NewScanner(os.Stdin)
		in.Buffer(make([]byte, 1<<20), 16<<20)
		for in.Scan() {
			var c command
			if err := json.Unmarshal(in.Bytes(), &c); err != nil {
				emit(map[string]any{"event": "error", "error": err.Error()})
				continue
			}
			switch c.Op {
			case "snapshot":
				s, err := snapshot(c)
				if err == nil {
					err = snapshots.SetSnapshot(ctx, c.Node, s)
				}
				if err != nil {
					emit(map[string]any{"event": "error", "error": err.Error()})
					continue
				}
			default:
				emit(map[string]any{"event": "error", "error": "unknown op " + c.Op})
				continue
			}
			emit(map[string]any{"event": "ok", "op": c.Op})
		}
		// The test closed stdin: it is done with us.
		g.Stop()
	}()
	if err := g.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
