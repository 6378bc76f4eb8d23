using System.Text.Json;
using Hapnd.Projections.Contracts;

namespace Hapnd.Worker;

/// <summary>
/// A worker request read straight from its frame with one <see cref="Utf8JsonReader"/> pass; for a batch command
/// (<c>applyBatch</c>, <c>resolveKeys</c>) with its states and rows: a replay's batch is thousands of events, and a
/// document of all of them (or a second pass over them) would cost more than running them. Each row is <c>[key, eventId, aggregateId, aggregateType, eventType, version,
/// globalPosition, timestampMicros, data, metadata, correlationId, causationId]</c> (the Rust side's
/// <c>BatchStep</c>); an event's data stays UTF-8 bytes (<see cref="Event.DataUtf8"/>) until the user reads it.
/// </summary>
internal sealed class BatchBody
{
    public static readonly HashSet<string> Commands = ["applyBatch", "resolveKeys"];

    // A batch's events mostly share their aggregate and types: the last string read of each is reused when the
    // bytes match, instead of allocating the same string a thousand times.
    private Recent _lastKey = new();
    private Recent _lastAggregateId = new();
    private Recent _lastAggregateType = new();
    private Recent _lastType = new();

    private BatchBody()
    {
    }

    public string? Command { get; private set; }

    /// <summary>The states given, key → JSON text (null: none yet).</summary>
    public Dictionary<string, string?> States { get; } = new(StringComparer.Ordinal);

    public List<(string Key, Event Event)> Rows { get; } = [];

    /// <summary>The raw body, for commands other than the batch ones (parsed as a document then).</summary>
    public ReadOnlyMemory<byte> Body { get; private set; }

    /// <summary>
    /// Reads a request frame in one forward pass: the envelope (<see cref="Hapnd.Protocol.Requests"/> documents it),
    /// the body's command, and a batch command's states and rows as they come. Other bodies are only delimited.
    /// <paramref name="id"/> is set as soon as it is read, so a bad body can still be answered.
    /// </summary>
    /// <exception cref="Hapnd.Protocol.ProtocolException">The frame is not a request.</exception>
    /// <exception cref="JsonException">The frame is not JSON of the documented shape.</exception>
    /// <exception cref="FormatException">A row is malformed.</exception>
    public static BatchBody Read(ReadOnlyMemory<byte> frame, out ulong id)
    {
        id = 0;
        var batch = new BatchBody();
        var reader = new Utf8JsonReader(frame.Span);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new Hapnd.Protocol.ProtocolException("a request is a JSON object");
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
                batch.ReadBody(frame, ref reader);
                sawBody = true;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        if (type != "request")
        {
            throw new Hapnd.Protocol.ProtocolException("expected a request");
        }
        return sawBody ? batch : throw new JsonException("the request has no body");
    }

    private void ReadBody(ReadOnlyMemory<byte> frame, ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("the body is a JSON object");
        }
        var start = (int)reader.TokenStartIndex;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("cmd"u8))
            {
                reader.Read();
                Command = reader.GetString();
            }
            else if (reader.ValueTextEquals("states"u8))
            {
                reader.Read();
                ReadStates(Hapnd.Protocol.Requests.Value(frame, ref reader));
            }
            else if (reader.ValueTextEquals("events"u8) && (Command is null || Commands.Contains(Command)))
            {
                reader.Read();
                ReadRows(frame, ref reader);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        Body = frame[start..(int)reader.BytesConsumed];
    }

    private void ReadStates(ReadOnlyMemory<byte> states)
    {
        using var document = JsonDocument.Parse(states);
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            return;
        }
        foreach (var state in document.RootElement.EnumerateObject())
        {
            States[state.Name] = state.Value.ValueKind == JsonValueKind.Null ? null : state.Value.GetRawText();
        }
    }

    private void ReadRows(ReadOnlyMemory<byte> frame, ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new FormatException("a batch's events are an array of rows");
        }
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartArray)
            {
                throw new FormatException("every event of a batch is a row (a JSON array)");
            }
            Expect(ref reader, null, "key");
            var key = reader.TokenType == JsonTokenType.String ? _lastKey.Read(ref reader) : "";
            Expect(ref reader, JsonTokenType.String, "eventId");
            var eventId = reader.GetGuid();
            Expect(ref reader, JsonTokenType.String, "aggregateId");
            var aggregateId = _lastAggregateId.Read(ref reader);
            Expect(ref reader, JsonTokenType.String, "aggregateType");
            var aggregateType = _lastAggregateType.Read(ref reader);
            Expect(ref reader, JsonTokenType.String, "eventType");
            var type = _lastType.Read(ref reader);
            Expect(ref reader, JsonTokenType.Number, "version");
            var version = reader.GetInt64();
            Expect(ref reader, JsonTokenType.Number, "globalPosition");
            var globalPosition = reader.GetInt64();
            Expect(ref reader, JsonTokenType.Number, "timestampMicros");
            var timestamp = DateTimeOffset.UnixEpoch.AddTicks(reader.GetInt64() * TimeSpan.TicksPerMicrosecond);
            Expect(ref reader, null, "data");
            // A copy: the frame's buffer is reused by the next request, and user code may keep an event.
            var data = Hapnd.Protocol.Requests.Value(frame, ref reader).ToArray();
            Expect(ref reader, null, "metadata");
            JsonElement? metadata = reader.TokenType == JsonTokenType.Null ? null : JsonElement.ParseValue(ref reader);
            Expect(ref reader, null, "correlationId");
            var correlationId = reader.TokenType == JsonTokenType.Null ? null : reader.GetString();
            Expect(ref reader, null, "causationId");
            var causationId = reader.TokenType == JsonTokenType.Null ? null : reader.GetString();
            Expect(ref reader, JsonTokenType.EndArray, "the end of the row");
            Rows.Add((key, new Event
            {
                EventId = eventId,
                AggregateId = aggregateId,
                AggregateType = aggregateType,
                Type = type,
                Version = version,
                GlobalPosition = globalPosition,
                Timestamp = timestamp,
                DataUtf8 = data,
                Metadata = metadata,
                CorrelationId = correlationId,
                CausationId = causationId,
            }));
        }
    }

    private static void Expect(ref Utf8JsonReader reader, JsonTokenType? type, string what)
    {
        if (!reader.Read() || type is { } expected && reader.TokenType != expected)
        {
            throw new FormatException($"a batch row is malformed at {what}");
        }
    }

    /// <summary>The last string read for one column, reused while the next rows carry the same bytes.</summary>
    private struct Recent
    {
        private byte[]? _bytes;
        private string? _text;

        public string Read(ref Utf8JsonReader reader)
        {
            if (!reader.ValueIsEscaped && !reader.HasValueSequence && _bytes is not null && _text is not null
                && reader.ValueSpan.SequenceEqual(_bytes))
            {
                return _text;
            }
            _text = reader.GetString()!;
            _bytes = reader.ValueIsEscaped ? null : reader.ValueSpan.ToArray();
            return _text;
        }
    }
}
