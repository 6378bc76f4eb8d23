using System.Text.Json;

namespace Hapnd.Protocol;

/// <summary>The request envelope, <c>{"type":"request","id":N,"body":{...}}</c>, as every worker reads it.</summary>
public static class Requests
{
    /// <summary>
    /// Parses a request frame; <paramref name="id"/> is set as soon as it is read, so a bad body can still be
    /// answered. The caller disposes the document, which <paramref name="body"/> lives in.
    /// </summary>
    /// <exception cref="ProtocolException">The frame is not a request.</exception>
    /// <exception cref="JsonException">The frame is not JSON.</exception>
    /// <exception cref="KeyNotFoundException">The envelope lacks a field.</exception>
    public static JsonDocument Open(ReadOnlyMemory<byte> frame, out ulong id, out JsonElement body)
    {
        id = 0;
        var document = JsonDocument.Parse(frame);
        try
        {
            var root = document.RootElement;
            if (root.GetProperty("type").GetString() != "request")
            {
                throw new ProtocolException("expected a request");
            }
            id = root.GetProperty("id").GetUInt64();
            body = root.GetProperty("body");
            return document;
        }
        catch
        {
            document.Dispose();
            throw;
        }
    }
}
