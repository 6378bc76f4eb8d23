// The OrderReducer, second version: every item counts twice. Same class and state names as
// tests/legit/order_reducer.cs, other logic: the rebinding and tenant-isolation scenarios tell the two apart by total.
using Hapnd.Projections.Contracts;
public record OrderState { public string? CustomerId { get; init; } public decimal Total { get; init; } }
public record OrderPlacedData(string CustomerId);
public record ItemAddedData(string Item, decimal Price);
public class OrderReducer : IReducer<OrderState> {
    public OrderState Apply(OrderState? state, Event @event) {
        state ??= new OrderState();
        return @event.Type switch {
            "OrderPlaced" => state with { CustomerId = @event.GetData<OrderPlacedData>().CustomerId },
            "ItemAdded" => state with { Total = state.Total + 2 * @event.GetData<ItemAddedData>().Price },
            _ => state };
    }
}
