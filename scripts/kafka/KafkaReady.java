import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;

/**
 * Readiness probe used by local.sh: exits 0 once the broker at args[0] answers a metadata
 * (DescribeCluster) request listing at least one broker, exits 1 after args[1] milliseconds.
 */
public final class KafkaReady {
    public static void main(String[] args) throws InterruptedException {
        String bootstrap = args[0];
        long deadline = System.currentTimeMillis() + Long.parseLong(args[1]);
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "3000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "5000");
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
        Exception last = null;
        try (Admin admin = Admin.create(props)) {
            while (System.currentTimeMillis() < deadline) {
                try {
                    DescribeClusterResult cluster = admin.describeCluster();
                    int brokers = cluster.nodes().get().size();
                    String clusterId = cluster.clusterId().get();
                    if (brokers > 0) {
                        System.out.println("cluster=" + clusterId + " brokers=" + brokers);
                        return;
                    }
                } catch (Exception e) {
                    last = e;
                }
                Thread.sleep(250);
            }
        }
        System.err.println("broker at " + bootstrap + " not ready: " + (last == null ? "no brokers in metadata" : last));
        System.exit(1);
    }
}
