using System.Text.Json;
using Hapnd.Projections.Contracts;

namespace Hapnd.Worker;

/// <summary>
/// Reads an event as the supervisor sends it, the same camelCase shape the HTTP API returns:
/// <c>{"eventId","aggregateId","aggregateType","eventType","version","globalPosition","timestamp","data",
/// "metadata"?,"correlationId"?,"causationId"?}</c>, for single-event requests (batches travel as rows: see
/// <see cref="BatchBody"/>). The event's data stays a view into the request's document.
/// </summary>
internal static class EventJson
{
    /// <summary>Read in one pass over the properties: looking each up by name would scan the object eleven times.</summary>
    public static Event Read(JsonElement json)
    {
        Guid? eventId = null;
        string? aggregateId = null, aggregateType = null, type = null, correlationId = null, causationId = null;
        long? version = null, globalPosition = null;
        DateTimeOffset? timestamp = null;
        JsonElement? data = null, metadata = null;
        foreach (var property in json.EnumerateObject())
        {
            var value = property.Value;
            if (property.NameEquals("eventId"u8))
            {
                eventId = value.GetGuid();
            }
            else if (property.NameEquals("aggregateId"u8))
            {
                aggregateId = value.GetString();
            }
            else if (property.NameEquals("aggregateType"u8))
            {
                aggregateType = value.GetString();
            }
            else if (property.NameEquals("eventType"u8))
            {
                type = value.GetString();
            }
            else if (property.NameEquals("version"u8))
            {
                version = value.GetInt64();
            }
            else if (property.NameEquals("globalPosition"u8))
            {
                globalPosition = value.GetInt64();
            }
            else if (property.NameEquals("timestamp"u8))
            {
                timestamp = value.GetDateTimeOffset();
            }
            else if (property.NameEquals("data"u8))
            {
                data = value;
            }
            else if (property.NameEquals("metadata"u8))
            {
                metadata = value.ValueKind == JsonValueKind.Null ? null : value;
            }
            else if (property.NameEquals("correlationId"u8))
            {
                correlationId = value.ValueKind == JsonValueKind.Null ? null : value.GetString();
            }
            else if (property.NameEquals("causationId"u8))
            {
                causationId = value.ValueKind == JsonValueKind.Null ? null : value.GetString();
            }
        }
        return new Event
        {
            EventId = eventId ?? throw Missing("eventId"),
            AggregateId = aggregateId ?? throw Missing("aggregateId"),
            AggregateType = aggregateType ?? throw Missing("aggregateType"),
            Type = type ?? throw Missing("eventType"),
            Version = version ?? throw Missing("version"),
            GlobalPosition = globalPosition ?? throw Missing("globalPosition"),
            Timestamp = timestamp ?? throw Missing("timestamp"),
            CorrelationId = correlationId,
            CausationId = causationId,
            Metadata = metadata,
            Data = data ?? throw Missing("data"),
        };
    }

    private static FormatException Missing(string name) => new($"the event has no {name}");
}
