// GetSecretValue N times with the AWS SDK for Java 2.x; prints each call's ms as JSON.
import java.net.URI;
import java.util.ArrayList;
import java.util.List;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.secretsmanager.SecretsManagerClient;
import software.amazon.awssdk.services.secretsmanager.model.GetSecretValueRequest;

public class GetKustosSecret {
    public static void main(String[] args) {
        SecretsManagerClient client = SecretsManagerClient.builder()
                .endpointOverride(URI.create(System.getenv("KUSTOS_ENDPOINT")))
                .region(Region.of(System.getenv("AWS_REGION")))
                .build();
        int n = Integer.parseInt(System.getenv().getOrDefault("BENCH_CALLS", "100"));
        GetSecretValueRequest request = GetSecretValueRequest.builder()
                .secretId(System.getenv("BENCH_SECRET_ID")).build();
        List<String> times = new ArrayList<>();
        for (int i = 0; i < 10 + n; i++) {
            long start = System.nanoTime();
            String value = client.getSecretValue(request).secretString();
            if (value == null) throw new IllegalStateException("no value");
            if (i >= 10) times.add(String.valueOf((System.nanoTime() - start) / 1e6));
        }
        System.out.println("[" + String.join(",", times) + "]");
    }
}
