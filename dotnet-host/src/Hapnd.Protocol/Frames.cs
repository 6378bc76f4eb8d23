using System.Buffers.Binary;
using System.Text.Json;

namespace Hapnd.Protocol;

/// <summary>
/// The framed protocol, version <see cref="Version"/>, as the executor defines it (`executor/src/worker/protocol.rs`):
/// a frame is a 4-byte little-endian length and that many bytes of UTF-8 JSON. The worker speaks first
/// (<c>{"type":"hello","protocol":1}</c>); then each <c>{"type":"request","id":N,"body":{...}}</c> gets one
/// <c>{"type":"response","id":N,"ok":...}</c> or <c>{"type":"response","id":N,"error":{"kind","message",...}}</c>.
/// </summary>
public sealed class Frames
{
    /// <summary>The protocol version both sides check at the handshake.</summary>
    public const int Version = 1;

    /// <summary>Requests larger than this are refused (the supervisor's own cap is the same).</summary>
    public const int MaxFrameBytes = 16 * 1024 * 1024;

    private readonly Stream _input;
    private readonly Stream _output;
    private readonly byte[] _header = new byte[4];
    private readonly ArrayBufferWriterStream _buffer = new();

    /// <summary>Frames over the given streams: the worker's standard input and output.</summary>
    public Frames(Stream input, Stream output)
    {
        _input = input;
        _output = output;
    }

    /// <summary>Sends the hello.</summary>
    public void SendHello()
    {
        var writer = StartFrame();
        writer.WriteStartObject();
        writer.WriteString("type", "hello");
        writer.WriteNumber("protocol", Version);
        writer.WriteEndObject();
        EndFrame(writer);
    }

    /// <summary>
    /// Reads the next frame's payload into a buffer owned by this object (valid until the next read), or null when
    /// the stream ended cleanly between frames.
    /// </summary>
    /// <exception cref="ProtocolException">A truncated or oversized frame.</exception>
    public ReadOnlyMemory<byte>? ReadFrame()
    {
        var waitStarted = System.Diagnostics.Stopwatch.GetTimestamp();
        LastGap = _lastSent == 0 ? TimeSpan.Zero : System.Diagnostics.Stopwatch.GetElapsedTime(_lastSent, waitStarted);
        if (!ReadExactly(_header, allowEnd: true))
        {
            return null;
        }
        var headerRead = System.Diagnostics.Stopwatch.GetTimestamp();
        LastWait = System.Diagnostics.Stopwatch.GetElapsedTime(waitStarted, headerRead);
        var length = BinaryPrimitives.ReadUInt32LittleEndian(_header);
        if (length > MaxFrameBytes)
        {
            throw new ProtocolException($"a frame of {length} bytes is above the cap of {MaxFrameBytes}");
        }
        var payload = _buffer.Rent((int)length);
        if (!ReadExactly(payload.AsSpan(0, (int)length), allowEnd: false))
        {
            throw new ProtocolException("the stream ended inside a frame");
        }
        LastTransfer = System.Diagnostics.Stopwatch.GetElapsedTime(headerRead);
        return payload.AsMemory(0, (int)length);
    }

    /// <summary>How long the last read waited for a frame to begin (the supervisor's turn).</summary>
    public TimeSpan LastWait { get; private set; }

    /// <summary>How long the last frame took to arrive once it began (the pipe's share).</summary>
    public TimeSpan LastTransfer { get; private set; }

    /// <summary>How long the frame sent before the last read took to write (the previous answer).</summary>
    public TimeSpan LastSend { get; private set; }

    /// <summary>The time between the end of that write and the start of the last read (the worker's own loop).</summary>
    public TimeSpan LastGap { get; private set; }

    private long _lastSent;

    /// <summary>Starts a response frame for request <paramref name="id"/>; the caller writes the <c>ok</c> value.</summary>
    public Utf8JsonWriter StartOk(ulong id)
    {
        var writer = StartFrame();
        writer.WriteStartObject();
        writer.WriteString("type", "response");
        writer.WriteNumber("id", id);
        writer.WritePropertyName("ok");
        return writer;
    }

    /// <summary>Ends a response started with <see cref="StartOk"/> and sends it.</summary>
    public void EndOk(Utf8JsonWriter writer)
    {
        writer.WriteEndObject();
        EndFrame(writer);
    }

    /// <summary>Sends an error response: the request failed in user code or was refused; the worker is fine.</summary>
    public void SendError(ulong id, string kind, string message, Action<Utf8JsonWriter>? detail = null)
    {
        var writer = StartFrame();
        writer.WriteStartObject();
        writer.WriteString("type", "response");
        writer.WriteNumber("id", id);
        writer.WriteStartObject("error");
        writer.WriteString("kind", kind);
        writer.WriteString("message", message);
        if (detail is not null)
        {
            writer.WritePropertyName("detail");
            writer.WriteStartObject();
            detail(writer);
            writer.WriteEndObject();
        }
        writer.WriteEndObject();
        writer.WriteEndObject();
        EndFrame(writer);
    }

    private Utf8JsonWriter StartFrame()
    {
        _buffer.ResetForWrite();
        return _buffer.Writer;
    }

    private void EndFrame(Utf8JsonWriter writer)
    {
        writer.Flush();
        var frame = _buffer.WrittenFrame();
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        _output.Write(frame.Span);
        _output.Flush();
        _lastSent = System.Diagnostics.Stopwatch.GetTimestamp();
        LastSend = System.Diagnostics.Stopwatch.GetElapsedTime(started, _lastSent);
    }

    private bool ReadExactly(Span<byte> target, bool allowEnd)
    {
        var filled = 0;
        while (filled < target.Length)
        {
            var read = _input.Read(target[filled..]);
            if (read == 0)
            {
                if (filled == 0 && allowEnd)
                {
                    return false;
                }
                throw new ProtocolException("the stream ended inside a frame");
            }
            filled += read;
        }
        return true;
    }
}

/// <summary>The peer broke the framing; the process should end.</summary>
public sealed class ProtocolException(string message) : Exception(message);
