"""Recording of raw sessions: every frame received and sent, and every connection event, into
rotating zstd-compressed files (format: docs/recording.md; replay: :mod:`hean.replay`)."""

from hean.record.format import FORMAT_VERSION, Record
from hean.record.reader import FileReader, RecordingReader, StreamInfo, read_records
from hean.record.recorder import Recorder, RecorderStats, RecordingError, StreamTap

__all__ = [
    "FORMAT_VERSION",
    "FileReader",
    "Record",
    "Recorder",
    "RecorderStats",
    "RecordingError",
    "RecordingReader",
    "StreamInfo",
    "StreamTap",
    "read_records",
]
