package baton.rocketmq;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import org.apache.rocketmq.broker.BrokerController;
import org.apache.rocketmq.common.BrokerConfig;
import org.apache.rocketmq.common.MQVersion;
import org.apache.rocketmq.common.TopicConfig;
import org.apache.rocketmq.common.constant.PermName;
import org.apache.rocketmq.common.namesrv.NamesrvConfig;
import org.apache.rocketmq.namesrv.NamesrvController;
import org.apache.rocketmq.remoting.netty.NettyClientConfig;
import org.apache.rocketmq.remoting.netty.NettyServerConfig;
import org.apache.rocketmq.remoting.protocol.RemotingCommand;
import org.apache.rocketmq.store.config.MessageStoreConfig;

/**
 * Runs Apache RocketMQ's name server and/or one broker (remoting mode, the
 * classes of rocketmq-namesrv and rocketmq-broker, no scripts) on loopback.
 *
 * <pre>
 * Launcher --dir DIR [--role all|namesrv|broker] [--namesrv HOST:PORT]
 *          [--broker-port P] [--topics T1,T2,...] [--queues N]
 * </pre>
 *
 * Ports: free ones picked here at start (bind port 0, release), unless
 * {@code --broker-port} names one (a broker restarted on its old address).
 * A broker listens on three ports: P (remoting), P-2 (the "fast" channel
 * BrokerController opens beside it) and P+1 (HA); P is picked so that all
 * three are free. Topics are created with N read/write queues and
 * registered with the name server before "ready" is printed, so a client
 * started afterwards finds their routes at once.
 *
 * Output on stdout, one JSON object per line:
 * {"event":"ready","namesrv":"127.0.0.1:X","broker":"127.0.0.1:Y",
 *  "cluster":"...","broker_name":"..."} once serving, then
 * {"event":"stopped"} after a clean shutdown, which the line "stop" on
 * standard input asks for (it takes seconds: RocketMQ joins its service
 * threads). The line "restart-broker" restarts the broker alone: its
 * BrokerController is shut down (as a broker process stopping cleanly:
 * its connections closed, its offsets flushed, unregistered from the
 * name server), then a new one is started on the same ports and store
 * and registered again, and {"event":"broker_restarted","broker":"..."}
 * is printed; the name server keeps running. EOF on standard input
 * halts the JVM at once, so a harness that dies leaves no broker behind. Logs go to ~/logs/rocketmqlogs: run with
 * -Duser.home=DIR/home. TLS is off (tls.server.mode=disabled): the default,
 * "permissive", makes every remoting server generate a self-signed RSA
 * certificate at start, seconds of CPU on a small machine.
 */
public final class Launcher {
    static final String CLUSTER = "BatonCluster";
    static final String BROKER_NAME = "broker-a";

    public static void main(String[] args) throws Exception {
        String dir = null;
        String role = "all";
        String namesrvAddr = null;
        int brokerPort = 0;
        String topics = "";
        int queues = 4;
        for (int i = 0; i < args.length; i++) {
            String v = i + 1 < args.length ? args[i + 1] : null;
            switch (args[i]) {
                case "--dir": dir = v; i++; break;
                case "--role": role = v; i++; break;
                case "--namesrv": namesrvAddr = v; i++; break;
                case "--broker-port": brokerPort = Integer.parseInt(v); i++; break;
                case "--topics": topics = v; i++; break;
                case "--queues": queues = Integer.parseInt(v); i++; break;
                default: fail("unknown argument " + args[i]);
            }
        }
        if (dir == null) fail("--dir is required");
        // Plain remoting only (see the class doc); before any Netty class loads.
        System.setProperty("tls.server.mode", "disabled");
        // What NamesrvStartup and BrokerStartup set first: the version every
        // remoting request carries. Left at 0, the name server takes the
        // broker for a pre-3.0.11 one and ignores its topic table.
        System.setProperty(RemotingCommand.REMOTING_VERSION_KEY, Integer.toString(MQVersion.CURRENT_VERSION));
        boolean runNamesrv = role.equals("all") || role.equals("namesrv");
        boolean runBroker = role.equals("all") || role.equals("broker");
        if (!runNamesrv && !runBroker) fail("--role must be all, namesrv or broker");
        if (!runNamesrv && runBroker && namesrvAddr == null) fail("--role broker needs --namesrv");

        NamesrvController namesrv = null;
        if (runNamesrv) {
            NamesrvConfig nc = new NamesrvConfig();
            nc.setRocketmqHome(dir);
            nc.setKvConfigPath(dir + "/namesrv/kvConfig.json");
            nc.setConfigStorePath(dir + "/namesrv/namesrv.properties");
            NettyServerConfig ns = new NettyServerConfig();
            ns.setBindAddress("127.0.0.1");
            ns.setListenPort(freePort(0, 0));
            namesrv = new NamesrvController(nc, ns, new NettyClientConfig());
            if (!namesrv.initialize()) fail("name server failed to initialize");
            namesrv.start();
            progress("name server started");
            namesrvAddr = "127.0.0.1:" + ns.getListenPort();
        }

        BrokerController broker = null;
        String brokerAddr = null;
        int port = 0;
        if (runBroker) {
            port = brokerPort != 0 ? brokerPort : freePort(2, 1);
            broker = startBroker(dir, namesrvAddr, port, topics, queues, namesrv);
            brokerAddr = "127.0.0.1:" + port;
        }

        progress("topics registered");
        StringBuilder ready = new StringBuilder("{\"event\":\"ready\"");
        ready.append(",\"namesrv\":\"").append(namesrvAddr).append('"');
        if (brokerAddr != null) {
            ready.append(",\"broker\":\"").append(brokerAddr).append('"');
            ready.append(",\"cluster\":\"").append(CLUSTER).append('"');
            ready.append(",\"broker_name\":\"").append(BROKER_NAME).append('"');
        }
        ready.append('}');
        System.out.println(ready);
        System.out.flush();

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        boolean graceful = false;
        while ((line = in.readLine()) != null) {
            if (line.trim().equals("stop")) {
                graceful = true;
                break;
            }
            if (line.trim().equals("restart-broker") && broker != null) {
                progress("broker stopping");
                broker.shutdown();
                progress("broker stopped");
                broker = startBroker(dir, namesrvAddr, port, topics, queues, namesrv);
                System.out.println("{\"event\":\"broker_restarted\",\"broker\":\"" + brokerAddr + "\"}");
                System.out.flush();
            }
        }
        if (!graceful) {
            // EOF: the harness is gone or wants the broker gone now (a
            // crash, as far as clients can tell).
            Runtime.getRuntime().halt(0);
        }
        progress("stopping");
        if (broker != null) broker.shutdown();
        if (namesrv != null) namesrv.shutdown();
        progress("stopped");
        System.out.println("{\"event\":\"stopped\"}");
        System.out.flush();
        // Netty and RocketMQ leave non-daemon threads behind.
        System.exit(0);
    }

    /**
     * Starts a broker on {@code port} (and port-2, port+1) with its store
     * under {@code dir}, creates {@code topics}, registers it with the name
     * server and, when that runs in this process, waits until it routes
     * each topic. A restart calls it again with the same port and store.
     */
    static BrokerController startBroker(String dir, String namesrvAddr, int port, String topics, int queues,
                                        NamesrvController namesrv) throws Exception {
        BrokerConfig bc = new BrokerConfig();
        bc.setRocketmqHome(dir);
        bc.setBrokerClusterName(CLUSTER);
        bc.setBrokerName(BROKER_NAME);
        bc.setBrokerId(0);
        bc.setBrokerIP1("127.0.0.1");
        bc.setNamesrvAddr(namesrvAddr);
        bc.setListenPort(port);
        // Half messages are checked within seconds (default: 30 s apart,
        // 6 s old), so a test sees CHECK_TRANSACTION_STATE quickly.
        bc.setTransactionCheckInterval(1000);
        bc.setTransactionTimeOut(1000);
        // A send may wait in the broker's queue this long before it is
        // refused as "broker busy" (TIMEOUT_CLEAN_QUEUE; default 200 ms):
        // the test machine has 2 cores shared with other suites, and a
        // CI run saw one async send refused so, on the direct run.
        bc.setWaitTimeMillsInSendQueue(2000);
        NettyServerConfig ns = new NettyServerConfig();
        ns.setBindAddress("127.0.0.1");
        ns.setListenPort(port);
        MessageStoreConfig ms = new MessageStoreConfig();
        String store = dir + "/store";
        ms.setStorePathRootDir(store);
        ms.setStorePathCommitLog(store + "/commitlog");
        ms.setHaListenPort(port + 1);
        // Small mapped files: the defaults (1 GiB commit log) are sparse
        // but still cost address space and page cache on a shared disk.
        ms.setMappedFileSizeCommitLog(64 * 1024 * 1024);
        ms.setMappedFileSizeConsumeQueue(30_000 * 20);
        // Loopback tests on a shared disk: do not refuse writes because
        // other people's files fill it (nor call the disk full, and refuse
        // every send with SERVICE_NOT_AVAILABLE, past 90 % of it: the
        // commit log's warning level, read when the store starts).
        ms.setDiskMaxUsedSpaceRatio(95);
        System.setProperty("rocketmq.broker.diskSpaceWarningLevelRatio", "0.99");
        // No timer (delay-level) wheel: it allocates and clears tens of
        // MiB at start; the tests send no delayed messages.
        ms.setTimerWheelEnable(false);
        BrokerController broker = new BrokerController(bc, ns, new NettyClientConfig(), ms);
        if (!broker.initialize()) fail("broker failed to initialize");
        progress("broker initialized");
        broker.start();
        progress("broker started");
        if (!topics.isEmpty()) {
            for (String t : topics.split(",")) {
                TopicConfig tc = new TopicConfig(t, queues, queues, PermName.PERM_READ | PermName.PERM_WRITE);
                broker.getTopicConfigManager().updateTopicConfig(tc);
            }
        }
        // Synchronous registration: routes are in the name server when
        // it returns.
        broker.registerBrokerAll(true, false, true);
        // The call returns before the name server has every topic in
        // its route table (seen with 5.3.3: a route query right after
        // it answered TOPIC_NOT_EXIST), so "ready" waits until this
        // process's name server routes each topic (bounded; fails).
        if (namesrv != null && !topics.isEmpty()) {
            long deadline = System.nanoTime() + 30_000_000_000L;
            for (String t : topics.split(",")) {
                while (namesrv.getRouteInfoManager().pickupTopicRouteData(t) == null) {
                    if (System.nanoTime() > deadline) fail("topic " + t + " not routed by the name server within 30 s");
                    broker.registerBrokerAll(true, false, true);
                    Thread.sleep(100);
                }
            }
        }
        return broker;
    }

    /**
     * A free loopback port P such that P-below..P+above are free too
     * (bound and released; the caller binds it right after).
     */
    static int freePort(int below, int above) throws IOException {
        for (int attempt = 0; attempt < 100; attempt++) {
            int p;
            try (ServerSocket s = new ServerSocket()) {
                s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
                p = s.getLocalPort();
            }
            if (p - below < 1024 || p + above > 65535) continue;
            boolean ok = true;
            List<ServerSocket> held = new ArrayList<>();
            try {
                for (int q = p - below; q <= p + above; q++) {
                    if (q == p) continue;
                    ServerSocket s = new ServerSocket();
                    held.add(s);
                    s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), q));
                }
            } catch (IOException e) {
                ok = false;
            } finally {
                for (ServerSocket s : held) s.close();
            }
            if (ok) return p;
        }
        throw new IOException("no free loopback port range found");
    }

    /** Progress on stderr, with milliseconds since the JVM started. */
    static void progress(String what) {
        long ms = System.currentTimeMillis() - java.lang.management.ManagementFactory.getRuntimeMXBean().getStartTime();
        System.err.println("launcher: " + what + " at +" + ms + " ms");
    }

    static void fail(String why) {
        System.err.println("launcher: " + why);
        System.exit(2);
    }
}
