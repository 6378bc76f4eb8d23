using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Text.Json;
using Hapnd.Projections.Contracts;

public record UserActivity
{
    public string UserId { get; init; } = "";
    public int Actions { get; init; }
    public ImmutableSortedSet<string> DocumentsTouched { get; init; } = ImmutableSortedSet<string>.Empty;
    public int CharsWritten { get; init; }
    public int Created { get; init; }
    public int Deleted { get; init; }
    public long FirstSeenUnix { get; init; }
    public long LastSeenUnix { get; init; }
    public long LastPosition { get; init; }
    public long MaxVersionSeen { get; init; }
    public string LastAction { get; init; } = "";
    public ImmutableList<string> Clients { get; init; } = ImmutableList<string>.Empty;
}

[ProjectionName("user-activity")]
public class UserActivityProjection : IProjection<UserActivity>
{
    public string? ResolveKey(Event @event)
    {
        var user = MetadataString(@event, "userId");
        return string.IsNullOrWhiteSpace(user) ? null : user;
    }

    public UserActivity Apply(UserActivity? state, Event @event)
    {
        var seen = @event.Timestamp.ToUnixTimeSeconds();
        var row = state ?? new UserActivity { UserId = ResolveKey(@event)!, FirstSeenUnix = seen };
        var chars = @event.Type == "DocumentEdited" && @event.Data.TryGetProperty("chars", out var c) ? c.GetInt32() : 0;
        var client = MetadataString(@event, "client");
        return row with
        {
            Actions = row.Actions + 1,
            DocumentsTouched = row.DocumentsTouched.Add(@event.AggregateId),
            CharsWritten = row.CharsWritten + chars,
            Created = row.Created + (@event.Type == "DocumentCreated" ? 1 : 0),
            Deleted = row.Deleted + (@event.Type == "DocumentDeleted" ? 1 : 0),
            LastSeenUnix = seen,
            LastPosition = @event.GlobalPosition,
            MaxVersionSeen = Math.Max(row.MaxVersionSeen, @event.Version),
            LastAction = @event.Type,
            Clients = client is null || row.Clients.Contains(client) ? row.Clients : row.Clients.Add(client),
        };
    }

    private static string? MetadataString(Event @event, string name) =>
        @event.Metadata is { ValueKind: JsonValueKind.Object } meta
        && meta.TryGetProperty(name, out var value)
        && value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : null;
}
