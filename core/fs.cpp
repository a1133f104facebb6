// Whole-file reads, atomic writes and read-only memory maps on POSIX file descriptors, so every
// failure can be reported with the path and errno's reason.
#include "core/fs.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "core/error.h"

namespace r1kit {
namespace {

// Opens `path` read-only and checks that it is not a directory; returns the fd and its stat.
int open_for_reading(const std::string& path, struct stat* st) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) R1_THROW("cannot open '{}' for reading: {}", path, errno_message(errno));
  if (::fstat(fd, st) != 0) {
    int err = errno;
    ::close(fd);
    R1_THROW("cannot stat '{}': {}", path, errno_message(err));
  }
  if (S_ISDIR(st->st_mode)) {
    ::close(fd);
    R1_THROW("cannot read '{}': it is a directory", path);
  }
  return fd;
}

// fsync on a directory makes a rename in it durable; some file systems refuse it (EINVAL), which
// is harmless.
void fsync_parent_dir(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::string dir = parent.empty() ? std::string(".") : parent.string();
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  if (::fsync(fd) != 0 && errno != EINVAL && errno != EROFS) {
    int err = errno;
    ::close(fd);
    R1_THROW("cannot fsync directory '{}' after writing '{}': {}", dir, path, errno_message(err));
  }
  ::close(fd);
}

}  // namespace

std::string errno_message(int err) {
  return std::error_code(err, std::generic_category()).message();  // thread-safe, unlike strerror
}

std::string read_file(const std::string& path) {
  struct stat st {};
  int fd = open_for_reading(path, &st);
  std::string out;
  if (S_ISREG(st.st_mode) && st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      R1_THROW("cannot read '{}': {}", path, errno_message(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string atomic_temp_path(const std::string& path) {
  return fmt::format("{}.tmp.{}", path, ::getpid());
}

void write_file_atomic(const std::string& path, std::string_view data) {
  AtomicFileWriter w(path);
  w.write(data);
  w.commit();
}

// --- AtomicFileWriter ---------------------------------------------------------------------------

AtomicFileWriter::AtomicFileWriter(std::string path)
    : path_(std::move(path)), temp_path_(atomic_temp_path(path_)) {
  R1_CHECK(!path_.empty(), "atomic write: empty path");
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    R1_THROW("cannot write '{}': creating the temporary file '{}' failed: {}", path_, temp_path_,
             errno_message(errno));
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (!committed_) abandon();
}

void AtomicFileWriter::abandon() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(temp_path_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t size) {
  R1_CHECK(fd_ >= 0 && !committed_,
           "cannot write '{}': the writer was already committed or failed earlier", path_);
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      abandon();
      R1_THROW("cannot write '{}' (temporary file '{}'): {}", path_, temp_path_,
               errno_message(err));
    }
    p += n;
    size -= static_cast<size_t>(n);
    written_ += static_cast<uint64_t>(n);
  }
}

void AtomicFileWriter::commit() {
  R1_CHECK(fd_ >= 0 && !committed_,
           "cannot commit '{}': the writer was already committed or failed earlier", path_);
  if (::fsync(fd_) != 0) {
    int err = errno;
    abandon();
    R1_THROW("cannot write '{}': fsync of '{}' failed: {}", path_, temp_path_, errno_message(err));
  }
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    int err = errno;
    abandon();
    R1_THROW("cannot write '{}': close of '{}' failed: {}", path_, temp_path_, errno_message(err));
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    int err = errno;
    abandon();
    R1_THROW("cannot write '{}': renaming '{}' over it failed: {}", path_, temp_path_,
             errno_message(err));
  }
  committed_ = true;
  fsync_parent_dir(path_);
}

// --- MappedFile ---------------------------------------------------------------------------------

MappedFile MappedFile::open(const std::string& path) {
  struct stat st {};
  int fd = open_for_reading(path, &st);
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    R1_THROW("cannot map '{}': not a regular file", path);
  }
  MappedFile m;
  m.path_ = path;
  m.size_ = static_cast<size_t>(st.st_size);
  if (m.size_ > 0) {
    void* p = ::mmap(nullptr, m.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      R1_THROW("cannot map '{}' ({} bytes) into memory: {}", path, m.size_, errno_message(err));
    }
    m.data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
  return m;
}

MappedFile::~MappedFile() {
  release();
}

void MappedFile::release() noexcept {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
  path_.clear();
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : data_(o.data_), size_(o.size_), path_(std::move(o.path_)) {
  o.data_ = nullptr;
  o.size_ = 0;
  o.path_.clear();
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    release();
    data_ = o.data_;
    size_ = o.size_;
    path_ = std::move(o.path_);
    o.data_ = nullptr;
    o.size_ = 0;
    o.path_.clear();
  }
  return *this;
}

}  // namespace r1kit
