#include "testkit.hpp"

#include "error.hpp"
#include "plan/units.hpp"

using namespace devicemap;

class UnitsTest : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void parses_like_accelerate_data() {
    QTest::addColumn<QString>("text");
    QTest::addColumn<qulonglong>("bytes");
    QTest::newRow("GiB") << "10GiB" << qulonglong(10ull << 30);
    QTest::newRow("GB") << "20GB" << qulonglong(20'000'000'000ull);
    QTest::newRow("MB") << "512MB" << qulonglong(512'000'000ull);
    QTest::newRow("fraction GiB") << "1.5GiB" << qulonglong(1610612736ull);
    QTest::newRow("truncates like int()") << "15.69GiB" << qulonglong(16847009218ull);
    QTest::newRow("MiB") << "3MiB" << qulonglong(3ull << 20);
    QTest::newRow("KiB") << "1KiB" << qulonglong(1024);
    QTest::newRow("KB") << "1KB" << qulonglong(1000);
    QTest::newRow("TB") << "2TB" << qulonglong(2'000'000'000'000ull);
    QTest::newRow("TiB") << "1TiB" << qulonglong(1ull << 40);
    QTest::newRow("lower case unit") << "4gib" << qulonglong(4ull << 30);
    QTest::newRow("bits") << "8Gb" << qulonglong(1'000'000'000ull);
    QTest::newRow("plain bytes") << "1011916800" << qulonglong(1011916800ull);
    QTest::newRow("zero") << "0" << qulonglong(0);
  }
  void parses_like_accelerate() {
    QFETCH(QString, text);
    QFETCH(qulonglong, bytes);
    QCOMPARE(qulonglong(parse_size(text.toStdString())), bytes);
  }
  void rejects_garbage_quoting_it_data() {
    QTest::addColumn<QString>("text");
    for (const char* bad : {"", "GiB", "ten GiB", "10 parsecs", "-1GiB", "1e400GB", "12XB", "nanGB", "--5MB"})
      QTest::newRow(bad[0] ? bad : "empty") << QString(bad);
  }
  void rejects_garbage_quoting_it() {
    QFETCH(QString, text);
    try {
      parse_size(text.toStdString());
      QFAIL("accepted garbage");
    } catch (const Error& e) {
      QVERIFY2(QString(e.what()).contains("'" + text + "'"), e.what());
    }
  }
  void formats_for_people_and_round_trips_exact() {
    QCOMPARE(QString::fromStdString(format_size(512)), QString("512 B"));
    QCOMPARE(QString::fromStdString(format_size(1536ull << 20)), QString("1.50 GiB"));
    for (std::uint64_t b : {0ull, 1ull, 1000ull, 1024ull, 10ull << 30, 20'000'000'000ull, 1011916800ull, 123456789ull})
      QCOMPARE(parse_size(format_size_exact(b)), b);
    QCOMPARE(QString::fromStdString(format_size_exact(10ull << 30)), QString("10GiB"));
  }
};

QTEST_MAIN(UnitsTest)
#include "test_units.moc"
