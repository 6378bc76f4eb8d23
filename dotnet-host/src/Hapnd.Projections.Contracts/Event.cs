using System.Text.Json;

namespace Hapnd.Projections.Contracts;

/// <summary>One stored event, as a reducer or projection sees it.</summary>
public sealed class Event
{
    /// <summary>The event's unique id.</summary>
    public required Guid EventId { get; init; }

    /// <summary>The aggregate the event belongs to, e.g. <c>order_1</c>.</summary>
    public required string AggregateId { get; init; }

    /// <summary>The aggregate's type, e.g. <c>order</c>.</summary>
    public required string AggregateType { get; init; }

    /// <summary>The event's type, e.g. <c>OrderPlaced</c>.</summary>
    public required string Type { get; init; }

    /// <summary>The aggregate's version after this event (1 for its first event).</summary>
    public required long Version { get; init; }

    /// <summary>The event's position in the tenant's whole log.</summary>
    public required long GlobalPosition { get; init; }

    /// <summary>When the event was appended.</summary>
    public required DateTimeOffset Timestamp { get; init; }

    /// <summary>The id correlating this event with others, if the writer gave one.</summary>
    public string? CorrelationId { get; init; }

    /// <summary>The id of what caused this event, if the writer gave one.</summary>
    public string? CausationId { get; init; }

    /// <summary>The writer's metadata object, if any.</summary>
    public JsonElement? Metadata { get; init; }

    private JsonElement? _data;

    /// <summary>The event's data, as written.</summary>
    /// <remarks>A host may give the data as <see cref="DataUtf8"/> instead; it is then parsed on first use.</remarks>
    public JsonElement Data
    {
        get
        {
            if (_data is null)
            {
                var reader = new Utf8JsonReader(DataUtf8.Span);
                _data = JsonElement.ParseValue(ref reader);
            }
            return _data.Value;
        }
        init => _data = value;
    }

    /// <summary>The event's data as UTF-8 JSON, when the host gave it that way (replays do: no document per event).</summary>
    public ReadOnlyMemory<byte> DataUtf8 { get; init; }

    /// <summary>
    /// Reads <see cref="Data"/> as <typeparamref name="T"/> (camelCase JSON, property names matched case-insensitively).
    /// </summary>
    /// <exception cref="JsonException">The data does not fit <typeparamref name="T"/>.</exception>
    /// <exception cref="InvalidOperationException">The data is JSON <c>null</c>.</exception>
    public T GetData<T>() =>
        (_data is { } data
            ? data.Deserialize<T>(ContractJson.Options)
            : JsonSerializer.Deserialize<T>(DataUtf8.Span, ContractJson.Options))
        ?? throw new InvalidOperationException($"the data of event {EventId} ({Type}) is null");
}
