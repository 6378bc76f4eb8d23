using System.Text.Json;
using Hapnd.Projections.Contracts;

// The mailbox projection's next version: the same identity, and it also counts what was read.
public record MailboxState(int Unread, int Received, int Read, int Version);

[ProjectionName("mailbox")]
public class MailboxProjection : IProjection<MailboxState>
{
    public string? ResolveKey(Event @event) =>
        @event.Data.ValueKind == JsonValueKind.Object
        && @event.Data.TryGetProperty("mailboxId", out var id)
        && id.ValueKind == JsonValueKind.String
            ? id.GetString()
            : null;

    public MailboxState Apply(MailboxState? state, Event @event)
    {
        var row = state ?? new MailboxState(0, 0, 0, 2);
        return @event.Type switch
        {
            "EmailReceived" => row with { Unread = row.Unread + 1, Received = row.Received + 1 },
            "EmailRead" => row with { Unread = row.Unread - 1, Read = row.Read + 1 },
            _ => row,
        };
    }
}
