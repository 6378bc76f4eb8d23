using System.Text.Json;

namespace Hapnd.Protocol;

/// <summary>The request envelope, <c>{"type":"request","id":N,"body":{...}}</c>, as every worker reads it.</summary>
public static class Requests
{
    /// <summary>
    /// Reads the body where the reader stands (its first token read) and leaves the reader after it, or returns
    /// true when it read the frame to its end itself.
    /// </summary>
    public delegate bool BodyReader(ReadOnlyMemory<byte> frame, ref Utf8JsonReader reader);

    /// <summary>
    /// Checks a request frame's envelope in one forward pass, handing the body to <paramref name="readBody"/> where
    /// it stands, so nobody builds a document of the whole frame (a replay's body is most of it).
    /// <paramref name="id"/> is set as soon as it is read, so a bad body can still be answered.
    /// </summary>
    /// <exception cref="ProtocolException">The frame is not a request.</exception>
    /// <exception cref="JsonException">The frame is not JSON, or the envelope lacks a field.</exception>
    public static void Read(ReadOnlyMemory<byte> frame, out ulong id, BodyReader readBody)
    {
        id = 0;
        var reader = new Utf8JsonReader(frame.Span);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new ProtocolException("a request is a JSON object");
        }
        string? type = null;
        var sawBody = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                type = reader.GetString();
            }
            else if (reader.ValueTextEquals("id"u8))
            {
                reader.Read();
                id = reader.GetUInt64();
            }
            else if (reader.ValueTextEquals("body"u8))
            {
                reader.Read();
                sawBody = true;
                if (readBody(frame, ref reader))
                {
                    break;
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        if (type != "request")
        {
            throw new ProtocolException("expected a request");
        }
        if (!sawBody)
        {
            throw new JsonException("the request has no body");
        }
    }

    /// <summary>The body's bytes of a request frame.</summary>
    public static ReadOnlyMemory<byte> Body(ReadOnlyMemory<byte> frame, out ulong id)
    {
        ReadOnlyMemory<byte> body = default;
        Read(frame, out id, (ReadOnlyMemory<byte> source, ref Utf8JsonReader reader) =>
        {
            body = Value(source, ref reader);
            return false;
        });
        return body;
    }

    /// <summary>Parses a request frame into a document of its body; the caller disposes it.</summary>
    public static JsonDocument Open(ReadOnlyMemory<byte> frame, out ulong id, out JsonElement body)
    {
        var document = JsonDocument.Parse(Body(frame, out id));
        body = document.RootElement;
        return document;
    }

    /// <summary>The bytes of the value the reader is on (its first token read), leaving the reader after it.</summary>
    public static ReadOnlyMemory<byte> Value(ReadOnlyMemory<byte> source, ref Utf8JsonReader reader)
    {
        var start = (int)reader.TokenStartIndex;
        reader.Skip();
        return source[start..(int)reader.BytesConsumed];
    }
}
