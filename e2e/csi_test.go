package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// csiDriver is a running "bucketfs csi" and a client of it.
type csiDriver struct {
	cmd      *exec.Cmd
	socket   string
	stateDir string
	metrics  string // HOST:PORT of its metrics endpoint
	log      string
	conn     *grpc.ClientConn
	node     csi.NodeClient
	done     chan struct{}
}

// csiEnv is the suite's environment without the test's access keys: the
// driver's mounts must get their credentials from the volume's identity.
func (s *suite) csiEnv(extra ...string) []string {
	var env []string
	for _, kv := range s.env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// needRoot skips CSI tests when not root: the driver mounts for pods of
// any user and refuses to run otherwise. scripts/test runs e2e as root in CI.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the CSI driver runs as root (run scripts/test as root, as CI does)")
	}
}

// startCSI starts "bucketfs csi" with its state in stateDir, env as its
// environment and extra flags, and waits until it answers a Probe.
func (s *suite) startCSI(t *testing.T, stateDir string, env []string, extra ...string) *csiDriver {
	t.Helper()
	// A unix socket path has at most 107 bytes: not below TMPDIR.
	sockDir, err := os.MkdirTemp("/tmp", "bfs-csi-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	d := &csiDriver{socket: filepath.Join(sockDir, "csi.sock"), stateDir: stateDir, log: filepath.Join(t.TempDir(), "csi.log"), done: make(chan struct{})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.metrics = l.Addr().String()
	l.Close()
	logF, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"csi", "--csi-endpoint", "unix://" + d.socket, "--node-id", "e2e-node",
		"--state-dir", stateDir, "--metrics-addr", d.metrics, "--log-level", "debug"}, extra...)
	d.cmd = exec.Command(s.bin, args...)
	d.cmd.Env = env
	d.cmd.Stdout, d.cmd.Stderr = logF, logF
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); logF.Close(); close(d.done) }()
	t.Cleanup(func() {
		d.stop(t, syscall.SIGTERM)
		if t.Failed() {
			logTail(t, d.log)
		}
	})
	d.conn, err = grpc.NewClient("unix://"+d.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.conn.Close() })
	d.node = csi.NewNodeClient(d.conn)
	ident := csi.NewIdentityClient(d.conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := ident.Probe(ctx, &csi.ProbeRequest{})
		cancel()
		if err == nil {
			return d
		}
		select {
		case <-d.done:
			logTail(t, d.log)
			t.Fatalf("bucketfs csi exited: %v", d.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			logTail(t, d.log)
			t.Fatalf("bucketfs csi does not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the driver with sig and waits for it.
func (d *csiDriver) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		t.Errorf("bucketfs csi did not stop on %v", sig)
	}
}

// csiVolume describes a test volume: what a PersistentVolume would say.
type csiVolume struct {
	id       string
	attrs    map[string]string
	secrets  map[string]string
	readOnly bool
	flags    []string // spec.mountOptions
	group    string   // the pod's fsGroup
}

// with merges maps (volume attributes); later ones win.
func with(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// testAttrs are the attributes of a volume of the test server.
func (s *suite) testAttrs(source string, more ...string) map[string]string {
	opts := append([]string{"endpoint=" + s.endpoint, "path_style", "region=" + s.region}, more...)
	return map[string]string{"source": source, "options": strings.Join(opts, ",")}
}

func (v csiVolume) publishReq(target string) *csi.NodePublishVolumeRequest {
	return &csi.NodePublishVolumeRequest{
		VolumeId:   v.id,
		TargetPath: target,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{MountFlags: v.flags, VolumeMountGroup: v.group}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
		},
		Readonly:      v.readOnly,
		VolumeContext: v.attrs,
		Secrets:       v.secrets,
	}
}

// publish publishes v at target and fails the test on an error; the
// target is unmounted when the test ends, whatever happens.
func (d *csiDriver) publish(t *testing.T, s *suite, v csiVolume, target string) {
	t.Helper()
	t.Cleanup(func() { s.cleanupMount(t, target) })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if _, err := d.node.NodePublishVolume(ctx, v.publishReq(target)); err != nil {
		t.Fatalf("NodePublishVolume %s at %s: %v", v.id, target, err)
	}
	if !isMounted(t, target) {
		t.Fatalf("NodePublishVolume %s succeeded but %s is not a mount", v.id, target)
	}
}

func (d *csiDriver) unpublish(t *testing.T, id, target string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := d.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
	return err
}

// csiTargets makes a directory for targets, as the kubelet makes
// /var/lib/kubelet/pods/UID/volumes/kubernetes.io~csi/; the driver makes
// the targets in it.
func (s *suite) csiTargets(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(s.tmp, "csi-targets-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// staticController plays the cluster admin for the sanity suite, which
// creates its volumes through a controller: each CreateVolume hands out a
// prefix of one real bucket, as a PersistentVolume would name it. Every
// Node call goes to "bucketfs csi" unchanged (sanityProxy).
type staticController struct {
	csi.UnimplementedControllerServer
	s      *suite
	bucket string
	mu     sync.Mutex
	made   map[string]int64
}

func (c *staticController) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: []*csi.ControllerServiceCapability{{
		Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME}},
	}}}, nil
}

func (c *staticController) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "no name")
	}
	size := req.GetCapacityRange().GetRequiredBytes()
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.made[req.GetName()]; ok && old != size {
		return nil, status.Error(codes.AlreadyExists, "other size")
	}
	c.made[req.GetName()] = size
	prefix := strings.NewReplacer("/", "-", " ", "-").Replace(req.GetName())
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:      req.GetName(),
		CapacityBytes: size,
		VolumeContext: c.s.testAttrs("s3://" + c.bucket + "/" + prefix),
	}}, nil
}

func (c *staticController) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	c.mu.Lock()
	delete(c.made, req.GetVolumeId())
	c.mu.Unlock()
	return &csi.DeleteVolumeResponse{}, nil
}

// sanityProxy serves the sanity suite's connection: Identity says there
// is a controller (staticController), everything else is the driver's.
type sanityProxy struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedNodeServer
	ident csi.IdentityClient
	node  csi.NodeClient
}

func (p *sanityProxy) GetPluginInfo(ctx context.Context, r *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return p.ident.GetPluginInfo(ctx, r)
}

func (p *sanityProxy) Probe(ctx context.Context, r *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return p.ident.Probe(ctx, r)
}

func (p *sanityProxy) GetPluginCapabilities(ctx context.Context, r *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	resp, err := p.ident.GetPluginCapabilities(ctx, r)
	if err != nil {
		return nil, err
	}
	resp.Capabilities = append(resp.Capabilities, &csi.PluginCapability{Type: &csi.PluginCapability_Service_{
		Service: &csi.PluginCapability_Service{Type: csi.PluginCapability_Service_CONTROLLER_SERVICE}}})
	return resp, nil
}

func (p *sanityProxy) NodePublishVolume(ctx context.Context, r *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	return p.node.NodePublishVolume(ctx, r)
}

func (p *sanityProxy) NodeUnpublishVolume(ctx context.Context, r *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	return p.node.NodeUnpublishVolume(ctx, r)
}

func (p *sanityProxy) NodeStageVolume(ctx context.Context, r *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	return p.node.NodeStageVolume(ctx, r)
}

func (p *sanityProxy) NodeUnstageVolume(ctx context.Context, r *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	return p.node.NodeUnstageVolume(ctx, r)
}

func (p *sanityProxy) NodeGetCapabilities(ctx context.Context, r *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return p.node.NodeGetCapabilities(ctx, r)
}

func (p *sanityProxy) NodeGetInfo(ctx context.Context, r *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return p.node.NodeGetInfo(ctx, r)
}

// TestCSISanity runs the CSI spec's sanity suite (kubernetes-csi/csi-test)
// against "bucketfs csi": its Identity and Node specs, with real FUSE
// mounts of a versitygw bucket at the target paths the suite chooses.
func TestCSISanity(t *testing.T) {
	s := need(t)
	needRoot(t)
	bkt := s.bucket("csisanity")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {"readme.txt": []byte("sanity\n")}})
	d := s.startCSI(t, t.TempDir(), s.csiEnv("AWS_ACCESS_KEY_ID="+s.access, "AWS_SECRET_ACCESS_KEY="+s.secret))

	sockDir, err := os.MkdirTemp("/tmp", "bfs-sanity-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	serve := func(name string, register func(*grpc.Server)) string {
		path := filepath.Join(sockDir, name)
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		register(srv)
		go srv.Serve(l)
		t.Cleanup(srv.Stop)
		return path
	}
	p := &sanityProxy{ident: csi.NewIdentityClient(d.conn), node: d.node}
	nodeSock := serve("node.sock", func(g *grpc.Server) {
		csi.RegisterIdentityServer(g, p)
		csi.RegisterNodeServer(g, p)
	})
	ctrlSock := serve("controller.sock", func(g *grpc.Server) {
		csi.RegisterIdentityServer(g, p)
		csi.RegisterControllerServer(g, &staticController{s: s, bucket: bkt, made: map[string]int64{}})
	})

	targets := s.csiTargets(t)
	t.Cleanup(func() {
		// A failed spec may leave its mount behind.
		out, _ := os.ReadFile("/proc/self/mountinfo")
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(unescapeMountinfo(f[4]), targets+"/") {
				s.cleanupMount(t, unescapeMountinfo(f[4]))
			}
		}
	})
	cfg := sanity.NewTestConfig()
	cfg.Address = "unix://" + nodeSock
	cfg.ControllerAddress = "unix://" + ctrlSock
	cfg.TargetPath = filepath.Join(targets, "mount")
	cfg.StagingPath = filepath.Join(targets, "staging")
	cfg.IdempotentCount = 2
	cfg.TestVolumeAccessType = "mount"

	gomega.RegisterFailHandler(ginkgo.Fail)
	sc := sanity.GinkgoTest(&cfg)
	suiteCfg, reporterCfg := ginkgo.GinkgoConfiguration()
	// The node plugin's specs; the controller ones would test
	// staticController, which is the test's, not bucketfs.
	suiteCfg.FocusStrings = []string{`Node Service`, `Identity Service`}
	suiteCfg.Timeout = 10 * time.Minute
	reporterCfg.Succinct = true
	reporterCfg.NoColor = true
	ok := ginkgo.RunSpecs(t, "bucketfs CSI sanity", suiteCfg, reporterCfg)
	// The succinct report ends without a newline; go test's own lines
	// must start one.
	os.Stdout.WriteString("\n")
	if !ok {
		t.Error("the CSI sanity suite failed")
	}
	sc.Finalize()
	// The specs that publish ("should work", "should be idempotent",
	// "should remove target path") made real mounts.
	logData, _ := os.ReadFile(d.log)
	if n := strings.Count(string(logData), "msg=mounted "); n < 3 {
		t.Errorf("the driver mounted %d times during the sanity suite, want at least 3", n)
	}
}
