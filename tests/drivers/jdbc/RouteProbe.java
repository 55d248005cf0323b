// pgjdbc pointed at the database server's own port, for tests/integration/test_routing.py: the
// kernel is expected to route the connection to the dbwarden relay.
//
//   java -cp /usr/share/java/postgresql.jar RouteProbe.java HOST PORT USER APPLICATION_NAME
//
// Prints one line of JSON: the first customer's email as the session reads it, and the SQLSTATE
// a DROP TABLE got ("" when it ran).

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public class RouteProbe {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/postgres";
        Properties props = new Properties();
        props.setProperty("user", args[2]);
        props.setProperty("ApplicationName", args[3]);
        props.setProperty("sslmode", "disable");
        String email = "";
        String dropState = "";
        try (Connection c = DriverManager.getConnection(url, props);
             Statement s = c.createStatement()) {
            try (ResultSet rs = s.executeQuery("SELECT email FROM customers ORDER BY id LIMIT 1")) {
                if (rs.next()) {
                    email = rs.getString(1);
                }
            }
            try {
                s.execute("DROP TABLE customers");
            } catch (SQLException e) {
                dropState = e.getSQLState();
            }
        }
        System.out.println("{\"email\":\"" + email.replace("\"", "\\\"") + "\",\"drop_sqlstate\":\""
                           + dropState + "\"}");
    }
}
