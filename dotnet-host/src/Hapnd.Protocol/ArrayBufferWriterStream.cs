using System.Buffers;
using System.Buffers.Binary;
using System.Text.Json;

namespace Hapnd.Protocol;

/// <summary>
/// The reusable buffers behind <see cref="Frames"/>: one for the frame being read, one for the frame being written,
/// with four bytes kept in front of the JSON for the length, so a response goes out in one write.
/// </summary>
internal sealed class ArrayBufferWriterStream
{
    private byte[] _read = new byte[64 * 1024];
    private readonly ArrayBufferWriter<byte> _write = new(64 * 1024);
    private readonly Utf8JsonWriter _writer;

    public ArrayBufferWriterStream()
    {
        // Escaping: the default encoder escapes HTML-sensitive characters, which JSON readers accept either way.
        _writer = new Utf8JsonWriter(_write, new JsonWriterOptions { SkipValidation = false });
    }

    public Utf8JsonWriter Writer => _writer;

    public byte[] Rent(int length)
    {
        if (_read.Length < length)
        {
            _read = new byte[Math.Max(length, _read.Length * 2)];
        }
        return _read;
    }

    public void ResetForWrite()
    {
        _write.ResetWrittenCount();
        // Room for the length; filled in by WrittenFrame.
        _write.GetSpan(4);
        _write.Advance(4);
        _writer.Reset(_write);
    }

    public ReadOnlyMemory<byte> WrittenFrame()
    {
        var frame = _write.WrittenMemory;
        var length = (uint)(frame.Length - 4);
        // The ArrayBufferWriter's memory is writable; WrittenMemory only types it read-only.
        var span = System.Runtime.InteropServices.MemoryMarshal.AsMemory(frame).Span;
        BinaryPrimitives.WriteUInt32LittleEndian(span, length);
        return frame;
    }
}
