// JdbcSession.java - tiny pgJDBC client used by capture-all.sh.
//   java -cp /usr/share/java/postgresql.jar JdbcSession.java \
//       'jdbc:postgresql://127.0.0.1:PORT/dbw?sslmode=disable' dbw
// Runs a PreparedStatement 6 times (pgJDBC switches to a named server-side
// statement after prepareThreshold=5 executions) and DatabaseMetaData.getTables.
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;

public class JdbcSession {
    public static void main(String[] args) throws Exception {
        String url = args[0];
        String user = args.length > 1 ? args[1] : "dbw";
        String password = args.length > 2 ? args[2] : "";
        try (Connection c = DriverManager.getConnection(url, user, password)) {
            try (PreparedStatement ps = c.prepareStatement(
                    "SELECT id, name, amount, active, created FROM t WHERE id >= ? ORDER BY id LIMIT 2")) {
                for (int i = 1; i <= 6; i++) {
                    ps.setInt(1, i);
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            System.out.println(rs.getInt(1) + " " + rs.getString(2) + " "
                                    + rs.getBigDecimal(3) + " " + rs.getBoolean(4) + " "
                                    + rs.getTimestamp(5));
                        }
                    }
                }
            }
            DatabaseMetaData md = c.getMetaData();
            try (ResultSet rs = md.getTables(null, "public", "t%", new String[] {"TABLE"})) {
                while (rs.next()) {
                    System.out.println(rs.getString("TABLE_SCHEM") + "." + rs.getString("TABLE_NAME"));
                }
            }
        }
    }
}
