CREATE TABLE "roles" (
	"organization_id" uuid NOT NULL,
	"role" text NOT NULL,
	"members" text[] DEFAULT '{}'::text[] NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "roles_organization_id_role_pk" PRIMARY KEY("organization_id","role")
);
--> statement-breakpoint
ALTER TABLE "roles" ADD CONSTRAINT "roles_organization_id_organizations_id_fk" FOREIGN KEY ("organization_id") REFERENCES "public"."organizations"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "approval_tokens" ADD COLUMN "role" text;--> statement-breakpoint
ALTER TABLE "approval_responses" ADD COLUMN "client_ip" text;--> statement-breakpoint
ALTER TABLE "approval_responses" ADD COLUMN "user_agent" text;
