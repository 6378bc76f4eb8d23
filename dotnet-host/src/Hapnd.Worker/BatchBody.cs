using System.Text.Json;
using Hapnd.Projections.Contracts;

namespace Hapnd.Worker;

/// <summary>
/// A worker request read straight from its frame with one <see cref="Utf8JsonReader"/> pass; for a batch command
/// (<c>applyBatch</c>, <c>resolveKeys</c>, <c>projectBatch</c>) with its states and rows: a replay's batch is thousands of events, and a
/// document of all of them (or a second pass over them) would cost more than running them. Each row is <c>[key,
/// eventId, aggregateId, aggregateType, eventType, version, globalPosition, timestampMicros, data, metadata,
/// correlationId, causationId]</c> (the Rust side's <c>BatchStep</c>), read by <see cref="RowScanner"/>; an event's
/// data stays UTF-8 bytes (<see cref="Event.DataUtf8"/>) until the user reads it.
/// </summary>
internal sealed class BatchBody
{
    public static readonly HashSet<string> Commands = ["applyBatch", "resolveKeys", "projectBatch"];

    private BatchBody()
    {
    }

    public string? Command { get; private set; }

    /// <summary>An <c>applyBatch</c> into the open replay session (<c>"session":true</c>) rather than given states.</summary>
    public bool Session { get; private set; }

    /// <summary><c>projectBegin</c>: the projection version has no stored state yet.</summary>
    public bool Fresh { get; private set; }

    /// <summary><c>projectBatch</c>: answer every state change with its event's position.</summary>
    public bool Record { get; private set; }

    /// <summary><c>projectFlush</c>: how many states may stay resident after the flush.</summary>
    public int Keep { get; private set; }

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
        var batch = new BatchBody();
        Hapnd.Protocol.Requests.Read(frame, out id, batch.ReadBody);
        return batch;
    }

    private bool ReadBody(ReadOnlyMemory<byte> frame, ref Utf8JsonReader reader)
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
            else if (reader.ValueTextEquals("session"u8))
            {
                reader.Read();
                Session = reader.GetBoolean();
            }
            else if (reader.ValueTextEquals("fresh"u8))
            {
                reader.Read();
                Fresh = reader.GetBoolean();
            }
            else if (reader.ValueTextEquals("record"u8))
            {
                reader.Read();
                Record = reader.GetBoolean();
            }
            else if (reader.ValueTextEquals("keep"u8))
            {
                reader.Read();
                Keep = reader.GetInt32();
            }
            else if (reader.ValueTextEquals("states"u8))
            {
                reader.Read();
                ReadStates(Hapnd.Protocol.Requests.Value(frame, ref reader));
            }
            else if (reader.ValueTextEquals("events"u8) && (Command is null || Commands.Contains(Command)))
            {
                // The rows are read by their own scanner, from the array's '[' on; the protocol puts them last in
                // the body and the body last in the request, so what follows is the two closing braces.
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    throw new FormatException("a batch's events are an array of rows");
                }
                var end = RowScanner.ReadRows(frame.Span, (int)reader.TokenStartIndex, Rows);
                if (!frame.Span[end..].Trim(" \t\r\n"u8).SequenceEqual("}}"u8))
                {
                    throw new FormatException("a batch's events must come last in the body, and the body last in the request");
                }
                Body = frame[start..(end + 1)];
                return true;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        Body = frame[start..(int)reader.BytesConsumed];
        return false;
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
}
