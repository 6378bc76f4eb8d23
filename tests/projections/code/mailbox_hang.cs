using System;
using System.Text.Json;
using Hapnd.Projections.Contracts;

// The mailbox projection with a worse bug: it never returns from an email flagged as spam.
public record MailboxState(int Unread, int Received);

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
        if (@event.Data.TryGetProperty("spam", out var spam) && spam.ValueKind == JsonValueKind.True)
        {
            while (spam.ValueKind == JsonValueKind.True) { }
        }
        var row = state ?? new MailboxState(0, 0);
        return @event.Type switch
        {
            "EmailReceived" => row with { Unread = row.Unread + 1, Received = row.Received + 1 },
            "EmailRead" => row with { Unread = row.Unread - 1 },
            _ => row,
        };
    }
}
