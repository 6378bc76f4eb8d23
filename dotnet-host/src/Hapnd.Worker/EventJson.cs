using System.Text.Json;
using Hapnd.Projections.Contracts;

namespace Hapnd.Worker;

/// <summary>
/// Reads an event as the supervisor sends it, the same camelCase shape the HTTP API returns:
/// <c>{"eventId","aggregateId","aggregateType","eventType","version","globalPosition","timestamp","data",
/// "metadata"?,"correlationId"?,"causationId"?}</c>. The event's data stays a view into the request's document.
/// </summary>
internal static class EventJson
{
    public static Event Read(JsonElement json) => new()
    {
        EventId = json.GetProperty("eventId").GetGuid(),
        AggregateId = RequiredString(json, "aggregateId"),
        AggregateType = RequiredString(json, "aggregateType"),
        Type = RequiredString(json, "eventType"),
        Version = json.GetProperty("version").GetInt64(),
        GlobalPosition = json.GetProperty("globalPosition").GetInt64(),
        Timestamp = json.GetProperty("timestamp").GetDateTimeOffset(),
        CorrelationId = OptionalString(json, "correlationId"),
        CausationId = OptionalString(json, "causationId"),
        Metadata = json.TryGetProperty("metadata", out var metadata) && metadata.ValueKind != JsonValueKind.Null
            ? metadata
            : null,
        Data = json.GetProperty("data"),
    };

    private static string RequiredString(JsonElement json, string name) =>
        json.GetProperty(name).GetString() ?? throw new FormatException($"the event's {name} is null");

    private static string? OptionalString(JsonElement json, string name) =>
        json.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value.GetString() : null;
}
