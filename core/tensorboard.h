// TensorBoard scalar logs without TensorFlow or protobuf: a writer of event files, a reader that
// checks them, and the bridge from metrics.jsonl rows.
//
// An event file is LOGDIR/events.out.tfevents.<unix seconds>.<hostname><suffix>. TensorBoard reads
// every file whose name contains "tfevents", in name order. The file is a sequence of TFRecord
// records, each
//   uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes | payload (length
//   bytes) | uint32 masked CRC-32C of the payload
// with mask(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (all uint32 arithmetic) and CRC-32C
// the Castagnoli CRC (reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF).
// Each payload is one serialized tensorflow.Event protobuf, encoded by hand here:
//   Event   { 1: wall_time double (wire type 1), 2: step int64 (varint), 3: file_version string,
//             5: summary Summary }
//   Summary { 1: repeated Value }
//   Value   { 1: tag string, 2: simple_value float (wire type 5) }
// The first record of a file holds only wall_time and file_version = "brain.Event:2" (version 2:
// TensorBoard keeps every point instead of dropping "orphaned" steps after a step goes back).
// Scalars are floats on disk: a double is rounded to the nearest float (beyond the float range it
// becomes ±inf, and NaN stays NaN, which TensorBoard plots as NaN).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/json.h"

namespace r1kit {

// --- Format pieces (exposed for tests and tools) ------------------------------------------------

// CRC-32C of `size` bytes, continuing from a previous result (`crc` = 0 starts a new CRC):
// crc32c("123456789") == 0xE3069283.
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t size);
inline uint32_t crc32c(std::string_view s) {
  return crc32c_extend(0, s.data(), s.size());
}
// The masked form TFRecord stores (a CRC of data that holds CRCs is otherwise weak).
uint32_t mask_crc32c(uint32_t crc);
// One whole TFRecord record (header, payload, trailer) around `payload`.
std::string tfrecord_frame(std::string_view payload);

// The Event payload of one scalar record: wall_time, step and one Value per (tag, value).
std::string encode_scalar_event(double wall_time, int64_t step,
                                const std::vector<std::pair<std::string, double>>& values);
// The Event payload of a file's first record.
std::string encode_file_version_event(double wall_time);

// Seconds since the Unix epoch, with sub-second precision: the default wall_time of the writer.
double unix_seconds_now();

// --- Writer -------------------------------------------------------------------------------------

// Appends scalar events to a new event file in `logdir` (created with its parents if missing).
// The file name is events.out.tfevents.<unix seconds>.<hostname> followed by ".<n>" (n = 1, 2, ...)
// only when that name is already taken (two writers started in the same second), then by
// `file_suffix` (e.g. ".grpo"); an existing file is never appended to or overwritten.
// Records are assembled in memory and handed to the kernel with one write() at every add (and by
// flush()), so a killed process leaves whole records, or at worst a torn last record, which
// TensorBoard and read_tensorboard_scalars(path, true) skip. Nothing is fsynced. After a failed
// write the writer refuses further adds (the file may end in a torn record). Thread-safe.
// Tags must be non-empty UTF-8 (TensorBoard drops an Event whose strings are not UTF-8).
class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::string& logdir, std::string file_suffix = "");
  // Flushes; errors at that point are logged, not thrown.
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  void add_scalar(const std::string& tag, int64_t step, double value,
                  double wall_time = unix_seconds_now());
  // One Event holding several values at the same step (no-op for an empty list).
  void add_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values,
                   double wall_time = unix_seconds_now());
  // Hands buffered records to the kernel (add_* already does after each record).
  void flush();
  const std::string& path() const { return path_; }

 private:
  void append_record(std::string_view payload);  // caller holds mu_
  void flush_locked();
  std::string path_;
  int fd_ = -1;
  std::string buffer_;
  bool failed_ = false;
  std::mutex mu_;
};

// --- Reader -------------------------------------------------------------------------------------

struct TbScalar {
  std::string tag;
  int64_t step = 0;
  double value = 0;  // the stored float, widened
  double wall_time = 0;
};

// Every simple_value of an event file, in file order (an Event with several values gives them in
// its order). Both CRCs of every record are checked, and every payload must parse as an Event;
// other Value kinds (images, tensors) and unknown fields are skipped. Errors name the file and the
// byte offset of the bad record: "'<path>': record at byte 96: payload CRC mismatch ...". A file
// that ends inside a record (a writer killed mid-write, or one still writing) is an error unless
// `allow_truncated_tail`, in which case that last partial record is ignored. A corrupt record
// that is complete is an error either way.
std::vector<TbScalar> read_tensorboard_scalars(const std::string& path,
                                               bool allow_truncated_tail = false);

// --- metrics.jsonl bridge -----------------------------------------------------------------------

// The scalars of one metrics row: every number (integer or floating point) under its key, nested
// objects flattened with '/' ({"time_s": {"rollout": 0.1}} -> "time_s/rollout"); strings, bools,
// nulls (NaN in JSON is written as null), arrays and the "step" field itself are skipped. Keys are
// in the row's (sorted) order. Throws naming `where` when the row is not an object.
std::vector<std::pair<std::string, double>> flatten_metrics_row(const Json& row,
                                                                std::string_view where);

// Writes `metrics_rows` (metrics.jsonl records: objects with an integer "step") as one Event per
// row to a new event file in `logdir` (TensorBoardWriter, suffix "." + tag_prefix with characters
// other than [A-Za-z0-9_.-] replaced by '_'), each value tagged tag_prefix + "/" + key, e.g.
// "grpo/reward_mean", "grpo/time_s/rollout"; an empty tag_prefix gives the bare keys. All rows
// share one wall time (now). A row with no scalar is skipped, and when no row has one no file is
// made. A row that is not an object or has no integer step is an error naming it, thrown before
// anything is written: "TensorBoard scalars 'grpo' for 'LOGDIR': metrics_rows[3]: missing
// required field 'step' (...)". Calling it twice for the same rows writes a second file, and
// TensorBoard then shows every point twice: callers that rerun a stage decide whether to call it.
void write_scalars_from_metrics(const std::string& logdir, const std::vector<Json>& metrics_rows,
                                const std::string& tag_prefix);

// The live form, which write_scalars_from_metrics also writes through: each row becomes one event
// as it is added (wall time: now unless given), in an event file made in `logdir` at the first row
// that has a scalar (named as above). A row is checked as write_scalars_from_metrics checks it
// (errors name `where`). Not thread-safe.
class MetricsTensorBoard {
 public:
  MetricsTensorBoard(std::string logdir, std::string tag_prefix);
  void add_row(const Json& row, std::string_view where, double wall_time = unix_seconds_now());
  // The event file's path; empty until a row with a scalar came.
  std::string path() const { return writer_ ? writer_->path() : std::string(); }

 private:
  std::string logdir_, prefix_;
  std::unique_ptr<TensorBoardWriter> writer_;
};

}  // namespace r1kit
