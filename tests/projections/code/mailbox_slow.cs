using System.Text.Json;
using Hapnd.Projections.Contracts;

// The mailbox projection with an Apply that takes about a hundred microseconds, so that catching up with a few
// thousand events takes long enough to do something meanwhile (redeploy, kill the server).
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
        long spin = @event.GlobalPosition;
        for (var i = 0; i < 200_000; i++)
        {
            spin = spin * 31 + i;
        }
        var row = state ?? new MailboxState(spin == 42 ? 1 : 0, 0);
        return @event.Type switch
        {
            "EmailReceived" => row with { Unread = row.Unread + 1, Received = row.Received + 1 },
            "EmailRead" => row with { Unread = row.Unread - 1 },
            _ => row,
        };
    }
}
