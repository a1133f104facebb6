// File helpers every writer and reader in r1kit goes through: whole-file reads, atomic writes
// (temp file + fsync + rename, so a crash never leaves a half-written file under the real name),
// and a read-only memory-mapped file. Every error names the path and the system's reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace r1kit {

// Reads a whole file; throws naming the path and the reason (missing, a directory, I/O error).
std::string read_file(const std::string& path);

// Writes `data` to `path` atomically: the bytes go to "<path>.tmp.<pid>", which is fsynced, renamed
// over `path`, and the directory is fsynced. Readers see the old file or the new one, never a
// mixture. One writer per path at a time (two threads of one process writing the same path would
// share the temporary name).
void write_file_atomic(const std::string& path, std::string_view data);

// The temporary name write_file_atomic and AtomicFileWriter use for `path`.
std::string atomic_temp_path(const std::string& path);

// Streams a file into "<path>.tmp.<pid>" and publishes it under `path` on commit(). Destroying a
// writer that was not committed removes the temporary file, so an exception while writing leaves
// the previous version of `path` (if any) untouched.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t size);
  void write(std::string_view s) { write(s.data(), s.size()); }
  // Bytes written so far.
  uint64_t size() const { return written_; }
  // fsync, close, rename over the final path, fsync the directory. No write() after this.
  void commit();
  const std::string& path() const { return path_; }

 private:
  void abandon() noexcept;
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

// A whole file mapped read-only into memory (MAP_PRIVATE, PROT_READ). Writing through data() is a
// segmentation fault, and so is reading after another process truncates the file: map only files
// that are not being rewritten in place (atomic writes replace files, they never truncate them).
// An empty file has size() == 0 and data() == nullptr. Move-only.
class MappedFile {
 public:
  MappedFile() = default;
  // Throws naming the path and the reason (missing, not a regular file, mmap failure).
  static MappedFile open(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  bool is_open() const { return !path_.empty(); }

 private:
  void release() noexcept;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// "No such file or directory" for errno values, for error messages.
std::string errno_message(int err);

}  // namespace r1kit
