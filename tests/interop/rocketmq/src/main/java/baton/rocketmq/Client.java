package baton.rocketmq;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.rocketmq.client.consumer.AllocateMessageQueueStrategy;
import org.apache.rocketmq.client.consumer.DefaultLitePullConsumer;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.consumer.rebalance.AllocateMessageQueueAveragely;
import org.apache.rocketmq.client.exception.MQBrokerException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.LocalTransactionState;
import org.apache.rocketmq.client.producer.SendCallback;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.client.producer.TransactionListener;
import org.apache.rocketmq.client.producer.TransactionMQProducer;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.remoting.RPCHook;
import org.apache.rocketmq.remoting.protocol.RemotingCommand;
import org.apache.rocketmq.remoting.protocol.RequestCode;

/**
 * The application of baton's RocketMQ tests, on Apache's own remoting
 * client (rocketmq-client): producers (sync, async, oneway, batch), a
 * transactional producer whose messages are committed only through the
 * broker's CHECK_TRANSACTION_STATE, and a push-consumer group.
 *
 * <pre>
 * Client --namesrv HOST:PORT --topic T [--group G] [--consumers 2]
 *        [--sync N] [--async N] [--oneway N] [--batch N] [--batch-size 50]
 *        [--tx N] [--size BYTES] [--async-inflight 256] [--timeout-ms 60000]
 *        [--pull-consumer true]
 *        [--run-id ID] [--sync-interval-ms 0] [--heartbeat-ms 30000]
 * </pre>
 *
 * Sequence: the consumers start first (CONSUME_FROM_FIRST_OFFSET, one
 * client instance and so one set of connections each), then the producers
 * send; the run ends when every key acknowledged as sent has been
 * consumed, or after --timeout-ms. Every message has a unique key
 * (ID-MODE-N, ID = --run-id) and a body of --size bytes. --sync-interval-ms
 * paces the sync sends (a pause after each), so that they span an event
 * such as a broker restart; --heartbeat-ms is every client instance's
 * heartbeatBrokerInterval (how soon a broker that lost its state learns
 * the consumers again).
 *
 * Output on stdout, one JSON object per line (everything else the client
 * writes goes to ~/logs, so run with -Duser.home=DIR):
 * <ul>
 * <li>{"event":"consumers_ready"} once every consumer started;
 * <li>{"event":"rebalance","consumer":"c1","topic":T,"queues":[..]} each
 *   time a consumer's share of a topic's queues changes (its allocation
 *   strategy, wrapped);
 * <li>{"event":"broker_request","client":C,"code":N} for each request a
 *   broker sent a client (NOTIFY_CONSUMER_IDS_CHANGED = 40,
 *   CHECK_TRANSACTION_STATE = 39), seen by an RPCHook;
 * <li>{"event":"sent","mode":M,"key":K,"msgId":ID,"offsetMsgId":O,"queue":Q,"us":LAT}
 *   for each send acknowledged SEND_OK (oneway: no msgId, no latency);
 * <li>{"event":"send_failed","mode":M,"key":K,"error":E,"code":C}, C the
 *   response code that failed it (MQBrokerException, found among the
 *   causes), else null;
 * <li>{"event":"pulled","key":K,"queue":Q,"offset":O} for each of this run's
 *   messages a lite pull consumer (--pull-consumer true: the pull API,
 *   in the group G-pull) polled, once per key;
 * <li>{"event":"tx_check","key":K,"msgId":ID} for each check answered
 *   COMMIT_MESSAGE;
 * <li>{"event":"consumed","consumer":C,"key":K,"msgId":ID,"queue":Q,"offset":O,"reconsume":R};
 * <li>{"event":"summary",...}: counts, duplicates, missing keys (acknowledged, not consumed), rates
 *   (messages/s) and the sync-send latency percentiles (microseconds).
 * </ul>
 * The exit code is 0 when the run completed (all keys consumed), 1 when it
 * timed out; the harness judges the lines, not the code.
 */
public final class Client {
    static final Object OUT = new Object();
    /** The keys acknowledged as sent (SEND_OK; oneway: the call returned). */
    static final Set<String> ACKED = ConcurrentHashMap.newKeySet();

    static void emit(String json) {
        synchronized (OUT) {
            System.out.println(json);
        }
    }

    static String q(String s) {
        if (s == null) return "null";
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    /** Sees the requests a broker sends this client instance. */
    static RPCHook brokerRequestHook(String client) {
        return new RPCHook() {
            @Override
            public void doBeforeRequest(String remoteAddr, RemotingCommand request) {
                int code = request.getCode();
                if (code == RequestCode.NOTIFY_CONSUMER_IDS_CHANGED || code == RequestCode.CHECK_TRANSACTION_STATE) {
                    emit("{\"event\":\"broker_request\",\"client\":" + q(client) + ",\"code\":" + code
                        + ",\"remote\":" + q(remoteAddr) + "}");
                }
            }

            @Override
            public void doAfterResponse(String remoteAddr, RemotingCommand request, RemotingCommand response) {
            }
        };
    }

    /** Averagely, reporting each change of this consumer's share. */
    static final class ReportingAllocation implements AllocateMessageQueueStrategy {
        final String consumer;
        final AllocateMessageQueueAveragely inner = new AllocateMessageQueueAveragely();
        final ConcurrentHashMap<String, List<Integer>> last = new ConcurrentHashMap<>();
        final AtomicLong changes = new AtomicLong();

        ReportingAllocation(String consumer) {
            this.consumer = consumer;
        }

        @Override
        public List<MessageQueue> allocate(String group, String currentCID, List<MessageQueue> mqAll, List<String> cidAll) {
            List<MessageQueue> mine = inner.allocate(group, currentCID, mqAll, cidAll);
            if (mqAll.isEmpty()) return mine;
            String topic = mqAll.get(0).getTopic();
            List<Integer> ids = new ArrayList<>();
            for (MessageQueue mq : mine) ids.add(mq.getQueueId());
            Collections.sort(ids);
            List<Integer> before = last.put(topic, ids);
            if (!ids.equals(before)) {
                changes.incrementAndGet();
                emit("{\"event\":\"rebalance\",\"consumer\":" + q(consumer) + ",\"topic\":" + q(topic)
                    + ",\"consumers\":" + cidAll.size() + ",\"queues\":" + ids + "}");
            }
            return mine;
        }

        @Override
        public String getName() {
            return "AVG_REPORTING";
        }
    }

    public static void main(String[] args) throws Exception {
        String namesrv = null, topic = null, group = "baton-group", runId = "r";
        int consumers = 2, sync = 0, async = 0, oneway = 0, batch = 0, batchSize = 50, tx = 0, size = 1024;
        int asyncInflight = 256;
        long timeoutMs = 60_000;
        long syncIntervalMs = 0;
        int heartbeatMs = 30_000;
        boolean pullConsumer = false;
        for (int i = 0; i < args.length; i++) {
            String v = i + 1 < args.length ? args[i + 1] : "";
            switch (args[i]) {
                case "--namesrv": namesrv = v; break;
                case "--topic": topic = v; break;
                case "--group": group = v; break;
                case "--run-id": runId = v; break;
                case "--consumers": consumers = Integer.parseInt(v); break;
                case "--sync": sync = Integer.parseInt(v); break;
                case "--async": async = Integer.parseInt(v); break;
                case "--oneway": oneway = Integer.parseInt(v); break;
                case "--batch": batch = Integer.parseInt(v); break;
                case "--batch-size": batchSize = Integer.parseInt(v); break;
                case "--tx": tx = Integer.parseInt(v); break;
                case "--size": size = Integer.parseInt(v); break;
                case "--async-inflight": asyncInflight = Integer.parseInt(v); break;
                case "--timeout-ms": timeoutMs = Long.parseLong(v); break;
                case "--sync-interval-ms": syncIntervalMs = Long.parseLong(v); break;
                case "--heartbeat-ms": heartbeatMs = Integer.parseInt(v); break;
                case "--pull-consumer": pullConsumer = Boolean.parseBoolean(v); break;
                default:
                    System.err.println("client: unknown argument " + args[i]);
                    System.exit(2);
            }
            i++;
        }
        if (namesrv == null || topic == null) {
            System.err.println("client: --namesrv and --topic are required");
            System.exit(2);
        }
        final String T = topic;
        final String runIdPrefix = runId + "-";
        byte[] body = new byte[size];
        Arrays.fill(body, (byte) 'x');

        int expected = sync + async + oneway + batch + tx;
        Set<String> sentKeys = ConcurrentHashMap.newKeySet();
        Set<String> consumedKeys = ConcurrentHashMap.newKeySet();
        AtomicLong consumedTotal = new AtomicLong();
        AtomicLong duplicates = new AtomicLong();
        AtomicLong firstConsumedNs = new AtomicLong();
        AtomicLong lastConsumedNs = new AtomicLong();

        // === consumers ===
        List<DefaultMQPushConsumer> pushConsumers = new ArrayList<>();
        List<ReportingAllocation> allocations = new ArrayList<>();
        for (int c = 1; c <= consumers; c++) {
            String name = "c" + c;
            ReportingAllocation alloc = new ReportingAllocation(name);
            allocations.add(alloc);
            DefaultMQPushConsumer pc = new DefaultMQPushConsumer(group, brokerRequestHook(name), alloc);
            pc.setNamesrvAddr(namesrv);
            pc.setInstanceName(runId + "-" + name);
            pc.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
            pc.setHeartbeatBrokerInterval(heartbeatMs);
            pc.subscribe(topic, "*");
            pc.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
                long now = System.nanoTime();
                firstConsumedNs.compareAndSet(0, now);
                lastConsumedNs.set(now);
                for (MessageExt m : msgs) {
                    String key = m.getKeys();
                    consumedTotal.incrementAndGet();
                    // Only this run's keys count: a topic shared with an
                    // earlier run can redeliver its messages (a half
                    // message checked again commits again).
                    if (!key.startsWith(runIdPrefix)) {
                        // not ours: reported, not counted
                    } else if (!consumedKeys.add(key)) {
                        duplicates.incrementAndGet();
                    }
                    emit("{\"event\":\"consumed\",\"consumer\":" + q(name) + ",\"key\":" + q(key)
                        + ",\"msgId\":" + q(m.getMsgId()) + ",\"queue\":" + m.getQueueId()
                        + ",\"offset\":" + m.getQueueOffset() + ",\"reconsume\":" + m.getReconsumeTimes() + "}");
                }
                return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
            });
            pc.start();
            pushConsumers.add(pc);
        }
        // === a lite pull consumer (the pull API), in a group of its own ===
        Set<String> pulledKeys = ConcurrentHashMap.newKeySet();
        DefaultLitePullConsumer lite = null;
        if (pullConsumer) {
            lite = new DefaultLitePullConsumer(group + "-pull", brokerRequestHook("pull"));
            lite.setNamesrvAddr(namesrv);
            lite.setInstanceName(runId + "-pull");
            lite.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
            lite.setHeartbeatBrokerInterval(heartbeatMs);
            lite.subscribe(topic, "*");
            lite.start();
            final DefaultLitePullConsumer polled = lite;
            Thread poller = new Thread(() -> {
                while (true) {
                    for (MessageExt m : polled.poll(200)) {
                        String key = m.getKeys();
                        if (key != null && key.startsWith(runIdPrefix) && pulledKeys.add(key)) {
                            emit("{\"event\":\"pulled\",\"key\":" + q(key) + ",\"queue\":" + m.getQueueId()
                                + ",\"offset\":" + m.getQueueOffset() + "}");
                        }
                    }
                }
            }, "lite-pull");
            poller.setDaemon(true);
            poller.start();
        }
        emit("{\"event\":\"consumers_ready\",\"consumers\":" + consumers + "}");

        // === producers ===
        AtomicLong failures = new AtomicLong();
        DefaultMQProducer producer = new DefaultMQProducer(group + "-producer", brokerRequestHook("producer"));
        producer.setNamesrvAddr(namesrv);
        producer.setInstanceName(runId + "-producer");
        producer.setHeartbeatBrokerInterval(heartbeatMs);
        producer.start();

        long[] syncLatencyNs = new long[sync];
        long produceStart = System.nanoTime();
        for (int n = 0; n < sync; n++) {
            String key = runId + "-sync-" + n;
            Message m = new Message(topic, "sync", key, body);
            sentKeys.add(key);
            long t0 = System.nanoTime();
            try {
                SendResult r = producer.send(m);
                syncLatencyNs[n] = System.nanoTime() - t0;
                report("sync", key, r, syncLatencyNs[n], failures);
            } catch (Exception e) {
                syncLatencyNs[n] = System.nanoTime() - t0;
                failed("sync", key, e, failures);
            }
            if (syncIntervalMs > 0) Thread.sleep(syncIntervalMs);
        }
        long syncDoneNs = System.nanoTime();

        Semaphore inflight = new Semaphore(asyncInflight);
        CountDownLatch asyncDone = new CountDownLatch(async);
        for (int n = 0; n < async; n++) {
            String key = runId + "-async-" + n;
            Message m = new Message(topic, "async", key, body);
            sentKeys.add(key);
            inflight.acquire();
            long t0 = System.nanoTime();
            try {
                producer.send(m, new SendCallback() {
                    @Override
                    public void onSuccess(SendResult r) {
                        report("async", key, r, System.nanoTime() - t0, failures);
                        inflight.release();
                        asyncDone.countDown();
                    }

                    @Override
                    public void onException(Throwable e) {
                        failed("async", key, e, failures);
                        inflight.release();
                        asyncDone.countDown();
                    }
                });
            } catch (Exception e) {
                failed("async", key, e, failures);
                inflight.release();
                asyncDone.countDown();
            }
        }
        asyncDone.await(timeoutMs, TimeUnit.MILLISECONDS);
        long asyncDoneNs = System.nanoTime();

        for (int n = 0; n < oneway; n++) {
            String key = runId + "-oneway-" + n;
            sentKeys.add(key);
            try {
                producer.sendOneway(new Message(topic, "oneway", key, body));
                ACKED.add(key);
                emit("{\"event\":\"sent\",\"mode\":\"oneway\",\"key\":" + q(key) + "}");
            } catch (Exception e) {
                failed("oneway", key, e, failures);
            }
        }

        for (int start = 0; start < batch; start += batchSize) {
            List<Message> msgs = new ArrayList<>();
            for (int n = start; n < Math.min(batch, start + batchSize); n++) {
                String key = runId + "-batch-" + n;
                sentKeys.add(key);
                msgs.add(new Message(topic, "batch", key, body));
            }
            long t0 = System.nanoTime();
            try {
                SendResult r = producer.send(msgs);
                // One result for the batch: its msgId lists every message's id.
                String[] ids = r.getMsgId() == null ? new String[0] : r.getMsgId().split(",");
                for (int k = 0; k < msgs.size(); k++) {
                    String id = k < ids.length ? ids[k] : null;
                    if (r.getSendStatus() == SendStatus.SEND_OK) {
                        ACKED.add(msgs.get(k).getKeys());
                        emit("{\"event\":\"sent\",\"mode\":\"batch\",\"key\":" + q(msgs.get(k).getKeys())
                            + ",\"msgId\":" + q(id) + ",\"queue\":" + r.getMessageQueue().getQueueId()
                            + ",\"us\":" + (System.nanoTime() - t0) / 1000 + "}");
                    } else {
                        failures.incrementAndGet();
                        emit("{\"event\":\"send_failed\",\"mode\":\"batch\",\"key\":" + q(msgs.get(k).getKeys())
                            + ",\"error\":" + q(r.getSendStatus().name()) + "}");
                    }
                }
            } catch (Exception e) {
                for (Message m : msgs) failed("batch", m.getKeys(), e, failures);
            }
        }

        // === transactional producer: UNKNOW locally, COMMIT on the broker's check ===
        TransactionMQProducer txProducer = null;
        if (tx > 0) {
            txProducer = new TransactionMQProducer(group + "-tx", brokerRequestHook("tx-producer"));
            txProducer.setNamesrvAddr(namesrv);
            txProducer.setInstanceName(runId + "-tx");
            txProducer.setHeartbeatBrokerInterval(heartbeatMs);
            txProducer.setTransactionListener(new TransactionListener() {
                @Override
                public LocalTransactionState executeLocalTransaction(Message msg, Object arg) {
                    return LocalTransactionState.UNKNOW;
                }

                @Override
                public LocalTransactionState checkLocalTransaction(MessageExt msg) {
                    emit("{\"event\":\"tx_check\",\"key\":" + q(msg.getKeys()) + ",\"msgId\":" + q(msg.getMsgId()) + "}");
                    return LocalTransactionState.COMMIT_MESSAGE;
                }
            });
            txProducer.start();
            for (int n = 0; n < tx; n++) {
                String key = runId + "-tx-" + n;
                sentKeys.add(key);
                long t0 = System.nanoTime();
                try {
                    SendResult r = txProducer.sendMessageInTransaction(new Message(topic, "tx", key, body), null);
                    report("tx", key, r, System.nanoTime() - t0, failures);
                } catch (Exception e) {
                    failed("tx", key, e, failures);
                }
            }
        }

        // Every key acknowledged as sent consumed (a send that failed may
        // or may not have reached the broker: not waited for).
        long consumeDeadline = System.nanoTime() + timeoutMs * 1_000_000L;
        boolean complete;
        while (!(complete = consumedKeys.containsAll(ACKED) && (!pullConsumer || pulledKeys.containsAll(ACKED)))
            && System.nanoTime() < consumeDeadline) {
            Thread.sleep(50);
        }
        List<String> missing = new ArrayList<>();
        for (String k : ACKED) if (!consumedKeys.contains(k)) missing.add(k);
        Collections.sort(missing);

        long[] lat = syncLatencyNs.clone();
        Arrays.sort(lat);
        double syncSecs = (syncDoneNs - produceStart) / 1e9;
        double asyncSecs = (asyncDoneNs - syncDoneNs) / 1e9;
        double consumeSecs = (lastConsumedNs.get() - firstConsumedNs.get()) / 1e9;
        long rebalances = 0;
        for (ReportingAllocation a : allocations) rebalances += a.changes.get();
        StringBuilder s = new StringBuilder("{\"event\":\"summary\"");
        s.append(",\"complete\":").append(complete);
        s.append(",\"expected\":").append(expected);
        s.append(",\"sent\":").append(sentKeys.size());
        s.append(",\"send_failures\":").append(failures.get());
        s.append(",\"consumed_unique\":").append(consumedKeys.size());
        s.append(",\"consumed_total\":").append(consumedTotal.get());
        s.append(",\"duplicates\":").append(duplicates.get());
        s.append(",\"pulled_unique\":").append(pulledKeys.size());
        s.append(",\"missing\":").append(missing.size());
        s.append(",\"rebalances\":").append(rebalances);
        s.append(",\"size\":").append(size);
        s.append(",\"sync_msgs_per_s\":").append(sync == 0 ? 0 : Math.round(sync / syncSecs));
        s.append(",\"async_msgs_per_s\":").append(async == 0 ? 0 : Math.round(async / asyncSecs));
        s.append(",\"consumed_msgs_per_s\":").append(consumeSecs <= 0 ? 0 : Math.round(consumedTotal.get() / consumeSecs));
        s.append(",\"sync_p50_us\":").append(pct(lat, 50));
        s.append(",\"sync_p99_us\":").append(pct(lat, 99));
        s.append(",\"sync_max_us\":").append(lat.length == 0 ? 0 : lat[lat.length - 1] / 1000);
        s.append('}');
        emit(s.toString());

        producer.shutdown();
        if (txProducer != null) txProducer.shutdown();
        for (DefaultMQPushConsumer pc : pushConsumers) pc.shutdown();
        if (lite != null) lite.shutdown();
        System.out.flush();
        // The client's own threads are not all daemons.
        System.exit(complete ? 0 : 1);
    }

    static long pct(long[] sorted, int p) {
        if (sorted.length == 0) return 0;
        int i = (int) Math.ceil(p / 100.0 * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(sorted.length - 1, i))] / 1000;
    }

    static void report(String mode, String key, SendResult r, long ns, AtomicLong failures) {
        if (r.getSendStatus() == SendStatus.SEND_OK) {
            ACKED.add(key);
            emit("{\"event\":\"sent\",\"mode\":" + q(mode) + ",\"key\":" + q(key) + ",\"msgId\":" + q(r.getMsgId())
                + ",\"offsetMsgId\":" + q(r.getOffsetMsgId()) + ",\"queue\":" + r.getMessageQueue().getQueueId()
                + ",\"us\":" + ns / 1000 + "}");
        } else {
            failures.incrementAndGet();
            emit("{\"event\":\"send_failed\",\"mode\":" + q(mode) + ",\"key\":" + q(key) + ",\"error\":"
                + q(r.getSendStatus().name()) + "}");
        }
    }

    static void failed(String mode, String key, Throwable e, AtomicLong failures) {
        failures.incrementAndGet();
        // The broker's (or baton's) response code, when a response failed
        // the send: the producer wraps it after its retries.
        Integer code = null;
        for (Throwable t = e; t != null && code == null; t = t.getCause()) {
            if (t instanceof MQBrokerException) code = ((MQBrokerException) t).getResponseCode();
        }
        emit("{\"event\":\"send_failed\",\"mode\":" + q(mode) + ",\"key\":" + q(key) + ",\"error\":" + q(e.toString())
            + ",\"code\":" + code + "}");
    }
}
