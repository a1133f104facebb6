// fs: whole-file reads, atomic writes (temp name, replacement, clean-up on failure) and read-only
// memory maps, with the path and the reason in every error.
#include "core/fs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "tests/common/test_util.h"

namespace r1kit {
namespace {

namespace fs = std::filesystem;
using testing::expect_error_contains;

using TempDir = testing::ScratchDir;

// Binary content with NULs and every byte value.
std::string binary_blob(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + 7) & 0xff);
  return s;
}

TEST(Fs, WriteAtomicThenReadBack) {
  TempDir dir;
  const std::string path = dir.file("blob.bin");
  const std::string data = binary_blob(200000);  // several read() chunks
  write_file_atomic(path, data);
  EXPECT_EQ(read_file(path), data);
  EXPECT_FALSE(fs::exists(atomic_temp_path(path)));
  EXPECT_EQ(atomic_temp_path(path), path + ".tmp." + std::to_string(::getpid()));

  // Replacing an existing file; an empty file is fine too.
  write_file_atomic(path, "second");
  EXPECT_EQ(read_file(path), "second");
  write_file_atomic(path, "");
  EXPECT_EQ(read_file(path), "");
  EXPECT_EQ(fs::file_size(path), 0u);
}

TEST(Fs, AtomicWriterStreamsAndCommits) {
  TempDir dir;
  const std::string path = dir.file("stream.txt");
  {
    AtomicFileWriter w(path);
    EXPECT_TRUE(fs::exists(atomic_temp_path(path)));
    EXPECT_FALSE(fs::exists(path));  // nothing visible under the real name before commit
    w.write("hello ");
    w.write(std::string_view("world"));
    EXPECT_EQ(w.size(), 11u);
    w.commit();
    expect_error_contains([&] { w.write("x"); }, {path, "already committed"});
    expect_error_contains([&] { w.commit(); }, {path, "already committed"});
  }
  EXPECT_EQ(read_file(path), "hello world");
  EXPECT_FALSE(fs::exists(atomic_temp_path(path)));
}

TEST(Fs, UncommittedWriterLeavesOldFileAndNoTemp) {
  TempDir dir;
  const std::string path = dir.file("keep.txt");
  write_file_atomic(path, "old contents");
  try {
    AtomicFileWriter w(path);
    w.write("new contents, half written");
    throw Error("simulated failure while writing");
  } catch (const Error&) {
  }
  EXPECT_EQ(read_file(path), "old contents");
  EXPECT_FALSE(fs::exists(atomic_temp_path(path)));
}

TEST(Fs, ErrorsNamePathAndReason) {
  TempDir dir;
  const std::string missing = dir.file("missing.txt");
  expect_error_contains([&] { read_file(missing); }, {missing, "No such file or directory"});
  expect_error_contains([&] { read_file(dir.str()); }, {dir.str(), "directory"});
  const std::string no_dir = dir.file("no/such/dir/f.txt");
  expect_error_contains([&] { write_file_atomic(no_dir, "x"); },
                        {no_dir, "temporary file", "No such file or directory"});
  // Renaming over a directory fails; the temporary file is cleaned up.
  const std::string sub = dir.file("sub");
  fs::create_directories(fs::path(sub) / "inner");
  expect_error_contains([&] { write_file_atomic(sub, "x"); }, {sub, "renaming"});
  EXPECT_FALSE(fs::exists(atomic_temp_path(sub)));
  EXPECT_EQ(errno_message(ENOENT), "No such file or directory");
}

TEST(Fs, MappedFileReadsWholeFile) {
  TempDir dir;
  const std::string path = dir.file("map.bin");
  const std::string data = binary_blob(10007);
  write_file_atomic(path, data);
  MappedFile m = MappedFile::open(path);
  ASSERT_TRUE(m.is_open());
  EXPECT_EQ(m.path(), path);
  ASSERT_EQ(m.size(), data.size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m.data()), m.size()), data);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(m.data()) % 4096, 0u);  // page-aligned base

  // Moves keep the mapping; the moved-from object is empty.
  const uint8_t* p = m.data();
  MappedFile moved = std::move(m);
  EXPECT_EQ(moved.data(), p);
  EXPECT_EQ(m.data(), nullptr);  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_FALSE(m.is_open());
  MappedFile assigned;
  assigned = std::move(moved);
  EXPECT_EQ(assigned.data(), p);
  EXPECT_EQ(assigned.data()[5], static_cast<uint8_t>(data[5]));

  // The mapping survives the file being replaced atomically (the old inode stays mapped).
  write_file_atomic(path, "replaced");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(assigned.data()), 16), data.substr(0, 16));
}

TEST(Fs, MappedFileEmptyAndErrors) {
  TempDir dir;
  const std::string empty = dir.file("empty.bin");
  write_file_atomic(empty, "");
  MappedFile m = MappedFile::open(empty);
  EXPECT_TRUE(m.is_open());
  EXPECT_EQ(m.size(), 0u);
  EXPECT_EQ(m.data(), nullptr);

  expect_error_contains([&] { MappedFile::open(dir.file("nope")); },
                        {dir.file("nope"), "No such file"});
  expect_error_contains([&] { MappedFile::open(dir.str()); }, {dir.str(), "directory"});
  if (fs::exists("/dev/null"))
    expect_error_contains([&] { MappedFile::open("/dev/null"); },
                          {"/dev/null", "not a regular file"});
}

}  // namespace
}  // namespace r1kit
