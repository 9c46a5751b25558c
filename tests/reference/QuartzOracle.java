import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Date;
import java.util.TimeZone;
import org.quartz.CronExpression;

/**
 * Answers cron questions with Quartz's own CronExpression, one per input line.
 *
 * Input:  id TAB zone TAB start-epoch-millis TAB count TAB expression
 * Output: id TAB "OK" TAB comma-separated epoch millis (fewer than count when Quartz runs out)
 *         id TAB "ERR" TAB Quartz's message (the expression was rejected)
 */
public final class QuartzOracle {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        StringBuilder out = new StringBuilder();
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isEmpty()) {
                continue;
            }
            String[] parts = line.split("\t", 5);
            String id = parts[0];
            TimeZone zone = TimeZone.getTimeZone(parts[1]);
            long start = Long.parseLong(parts[2]);
            int count = Integer.parseInt(parts[3]);
            String expression = parts[4];
            CronExpression cron;
            try {
                cron = new CronExpression(expression);
            } catch (Exception e) {
                out.append(id).append("\tERR\t").append(String.valueOf(e.getMessage()).replace('\t', ' ').replace('\n', ' ')).append('\n');
                continue;
            }
            cron.setTimeZone(zone);
            StringBuilder fires = new StringBuilder();
            Date after = new Date(start);
            for (int i = 0; i < count; i++) {
                Date next;
                try {
                    next = cron.getNextValidTimeAfter(after);
                } catch (Exception e) {
                    next = null;
                }
                if (next == null) {
                    break;
                }
                if (fires.length() > 0) {
                    fires.append(',');
                }
                fires.append(next.getTime());
                after = next;
            }
            out.append(id).append("\tOK\t").append(fires).append('\n');
        }
        System.out.print(out);
    }
}
