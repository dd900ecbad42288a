// Error messages, and the command line's, never carry raw bytes from a user's file: valid UTF-8 stays as it is, every other byte
// and every control character but newline and tab becomes \xNN (error.hpp).
#include "testkit.hpp"

#include "error.hpp"

using namespace devicemap;

class ErrorTextTest : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void escapes_what_is_not_utf8_data() {
    QTest::addColumn<QByteArray>("raw");
    QTest::addColumn<QByteArray>("shown");
    QTest::newRow("ascii") << QByteArray("tensor 'a.b' is missing") << QByteArray("tensor 'a.b' is missing");
    QTest::newRow("two, three and four bytes") << QByteArray("é € 😀") << QByteArray("é € 😀");
    QTest::newRow("stray continuation") << QByteArray("key \x80x") << QByteArray("key \\x80x");
    QTest::newRow("latin-1 byte") << QByteArray("caf\xe9!") << QByteArray("caf\\xe9!");
    QTest::newRow("overlong slash") << QByteArray("\xc0\xaf") << QByteArray("\\xc0\\xaf");
    QTest::newRow("overlong three bytes") << QByteArray("\xe0\x80\xaf") << QByteArray("\\xe0\\x80\\xaf");
    QTest::newRow("surrogate") << QByteArray("\xed\xa0\x80") << QByteArray("\\xed\\xa0\\x80");
    QTest::newRow("past U+10FFFF") << QByteArray("\xf4\x90\x80\x80") << QByteArray("\\xf4\\x90\\x80\\x80");
    QTest::newRow("cut off at the end") << QByteArray("name \xe2\x82") << QByteArray("name \\xe2\\x82");
    QTest::newRow("never valid") << QByteArray("\xff\xfe") << QByteArray("\\xff\\xfe");
    QTest::newRow("terminal escape") << QByteArray("\x1b[31mred") << QByteArray("\\x1b[31mred");
    QTest::newRow("newline and tab kept") << QByteArray("a\n\tb\x7f") << QByteArray("a\n\tb\\x7f");
  }
  void escapes_what_is_not_utf8() {
    QFETCH(QByteArray, raw);
    QFETCH(QByteArray, shown);
    const Error e(raw.toStdString());
    QCOMPARE(QByteArray(e.what()), shown);
    QCOMPARE(QByteArray::fromStdString(printable(raw.toStdString())), shown);
    // Escaping twice changes nothing: what an Error says can be quoted by another.
    QCOMPARE(QByteArray::fromStdString(printable(e.what())), shown);
  }
  void the_cli_prints_a_strangers_bytes_escaped() {
    // A skeleton file that is not UTF-8: the JSON reader's complaint quotes the byte it stopped at.
    testkit::TempDir dir;
    const auto path = dir.path() / "skeleton.json";
    testkit::write_text(path, std::string("{\"params\": [[\"caf\xe9\xff\", [2], \"F32\"]]}"));
    const auto r = testkit::run_cli({"plan", path.string()});
    QCOMPARE(r.code, 1);
    QVERIFY2(QString::fromStdString(r.err).contains("skeleton.json"), r.err.c_str());
    QVERIFY2(r.err.find('\xff') == std::string::npos && r.err.find('\xe9') == std::string::npos, r.err.c_str());
    DM_COMPARE_STR(printable(r.err), r.err);  // nothing left to escape: valid UTF-8 throughout
  }
};

QTEST_MAIN(ErrorTextTest)
#include "test_cli_error_text.moc"
