// Logs in through the dbwarden relay with a token as the password, for
// tests/integration/test_token_auth.py, and prints what the server says the session is.
//
//   java -cp /usr/share/java/postgresql.jar TokenLogin.java HOST PORT DB USER TOKEN
//
// One line: "ok <current_user> <session_user>", or "error <SQLSTATE> <message>".

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public class TokenLogin {
  public static void main(String[] args) {
    String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/" + args[2];
    Properties p = new Properties();
    p.setProperty("user", args[3]);
    p.setProperty("password", args[4]);
    p.setProperty("sslmode", "require");  // TLS, the relay's certificate not checked here
    p.setProperty("ApplicationName", "token-jdbc");
    try (Connection c = DriverManager.getConnection(url, p);
        Statement st = c.createStatement();
        ResultSet rs = st.executeQuery("SELECT current_user, session_user")) {
      rs.next();
      System.out.println("ok " + rs.getString(1) + " " + rs.getString(2));
    } catch (SQLException e) {
      System.out.println("error " + e.getSQLState() + " " + e.getMessage().replace('\n', ' '));
    }
  }
}
